"""Documents written by the libraries that write them for real, for the ``--docs`` tests.

A two-page PDF with bookmarked headings (fpdf2), a DOCX with heading styles
(python-docx), Markdown, HTML, a Chinese text file, a scanned PDF whose only
page is an image, and a file of a type that is not read.
"""

from __future__ import annotations

from pathlib import Path

PDF_FACTS = ("The boiler runs at 2 bar.", "Descale the boiler every 90 days.")
DOCX_FACT = "Refunds are paid within 14 days of the return."
MD_FACT = "The grinder burrs are replaced after 500 kg of coffee."
HTML_FACT = "Milk is steamed to 65 degrees Celsius."
ZH_FACT = "蒸馏是把大模型的知识转移到小模型的方法。"


def write_pdf(path: Path) -> Path:
    """Two pages, each opening with a bookmarked heading (the outline pypdf reads)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Espresso Machine Manual")
    for heading, fact in zip(("Operation", "Maintenance"), PDF_FACTS, strict=True):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.start_section(heading)
        pdf.cell(text=heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, " ".join([fact] * 12))
    pdf.output(str(path))
    return path


def write_scanned_pdf(path: Path) -> Path:
    """One page holding only a picture of text: what a scanner makes."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 120), "white")
    ImageDraw.Draw(image).text((10, 50), "Scanned warranty terms", fill="black")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(image, x=10, y=10, w=180)
    pdf.output(str(path))
    return path


def write_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Customer Policy", level=0)
    document.add_heading("Returns", level=1)
    document.add_heading("Refunds", level=2)
    document.add_paragraph(" ".join([DOCX_FACT] * 6))
    document.save(str(path))
    return path


def write_folder(folder: Path) -> Path:
    """Every kind of document in one folder (with a subfolder), plus one file that is skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    write_pdf(folder / "manual.pdf")
    write_scanned_pdf(folder / "warranty-scan.pdf")
    write_docx(folder / "policy.docx")
    (folder / "guides").mkdir(exist_ok=True)
    (folder / "guides" / "grinder.md").write_text(
        f"# Grinder Guide\n\n## Burrs\n\n### Replacement\n\n{' '.join([MD_FACT] * 6)}\n"
    )
    (folder / "guides" / "milk.html").write_text(
        "<html><head><title>Milk Handbook</title><script>var x = 1;</script></head><body>"
        f"<h1>Milk Handbook</h1><h2>Steaming</h2><p>{' '.join([HTML_FACT] * 6)}</p></body></html>"
    )
    zh = "".join(f"第{i}条：{ZH_FACT}" for i in range(40))  # no spaces, as Chinese is written
    (folder / "蒸馏.txt").write_text(zh, encoding="utf-8")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder
