"""Writes the example images under examples/ (drawn from the test split, never trained on) and
examples/README.md with each image's questions and expected answers."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

PICKS = [("banner", "banner"), ("document", "receipt"), ("chart", "chart"), ("shapes", "shapes"),
         ("multilingual", "multilingual"), ("strip", "strip"), ("ocr_code", "code")]


def main(out="examples"):
    os.makedirs(out, exist_ok=True)
    lines = ["# Example images", "", "Drawn by `python3 training/make_examples.py` from the test split of",
             "`training/data.py` (never seen in training). Questions the nano model was trained to answer:", "",
             "| image | size | question | expected answer |", "|---|---|---|---|"]
    for task, name in PICKS:
        i = 0
        while True:   # the receipt example should be a receipt, the chart a bar chart
            s = data.make_sample("test", 1_000_000 + i, task=task)
            i += 1
            if name == "receipt" and not s["desc"].startswith("receipt"):
                continue
            if name == "chart" and not s["desc"].startswith("bar"):
                continue
            break
        p = f"{out}/{name}.png"
        s["image"].save(p)
        for q, a in s["qa"]:
            lines.append(f"| {name}.png | {s['image'].width}×{s['image'].height} | {q} | {a} |")
    with open(f"{out}/README.md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
