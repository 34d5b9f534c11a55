"""``stillroom demo``: a bundled textbook about an invented town, and a teacher that knows it.

The data files here are package data: ``facts.jsonl`` (the dataset, ShareGPT
turns, with a few classic problems), ``prompts.txt`` (what the demo teacher is
asked) and ``answers.jsonl`` (what the teacher knows beyond the
textbook: the answers to those prompts, and one to mend the textbook's empty answer).
"""
