"""The teacher reads the user's documents: extract, chunk, questions, grounded answers."""
