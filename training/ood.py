"""The out-of-distribution evaluation set: the test tasks under the ways real inputs differ from the
generator's (variation.CONDITIONS: reworded questions, unseen fonts, a dark theme, the picture drawn
larger, a phone screenshot, a camera frame, blur/rotation/JPEG, "Describe this image."), drawn from a
seed space of its own (split "ood") with the fonts and phrasings training never sees.

Sample i of a task is the same content under every condition (the same word, values, shapes), so a
condition's column against `plain` (no variation) is the cost of that condition alone.

  python3 training/evaluate.py --ckpt models/edgevlm-nano.gguf --split ood --per-task 20 [--cli build/edgevlm ...]
"""
from __future__ import annotations

import data
import variation

CONDITIONS = {"plain": variation.Recipe(held_out=True), **variation.CONDITIONS}
TEXT_DRAWING_TASKS = ["ocr_word", "ocr_number", "ocr_code", "multilingual", "banner", "strip", "document", "chart"]


def tasks_of(condition: str) -> list:
    if condition == "paraphrase":
        return data.TASK_NAMES
    if condition == "font":
        return TEXT_DRAWING_TASKS
    if condition == "describe":
        return sorted(variation.CAPTION_TASKS, key=data.TASK_NAMES.index)
    return data.IMAGE_TASKS


def ood_set(per_cell: int) -> list:
    out = []
    for cond, recipe in CONDITIONS.items():
        for task in tasks_of(cond):
            for i in range(per_cell):
                s = data.make_sample("ood", i, task=task, max_turns=1, recipe=recipe)
                s["condition"] = cond
                out.append(s)
    return out


def correct(sample: dict, pred: str) -> bool:
    """Exact match; a description is right when it names everything the image shows
    (variation.caption_key_terms: the text, the total, every bar's colour, every shape)."""
    gold = sample["qa"][0][1]
    if sample.get("condition") == "describe":
        p = pred.lower()
        return all(term.lower() in p for term in variation.caption_key_terms(sample["task"], sample["desc"]))
    return pred.strip() == gold


def table(samples: list, preds: list) -> dict:
    """condition → task → [correct, n], with an "all" task per condition."""
    t: dict = {}
    for s, p in zip(samples, preds):
        row = t.setdefault(s["condition"], {})
        for key in (s["task"], "all"):
            c = row.setdefault(key, [0, 0])
            c[0] += int(correct(s, p))
            c[1] += 1
    return t


def markdown(t: dict, title: str = "") -> str:
    conds = list(t)
    lines = [f"### {title}" if title else "", "| task | " + " | ".join(conds) + " |", "|---" * (len(conds) + 1) + "|"]
    for task in data.TASK_NAMES + ["all"]:
        cells = [f"{100 * t[c][task][0] / t[c][task][1]:.0f}%" if task in t[c] else "–" for c in conds]
        lines.append(f"| {'**all**' if task == 'all' else task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
