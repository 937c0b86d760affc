"""The table of Dice vs ground truth: one row per slice, the mean, the current slice lit."""

from __future__ import annotations

from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

_CURRENT = QColor(79, 195, 247, 90)  # the plot's Dice colour, translucent
COLUMNS = ("slice", "Dice", "IoU", "F1@.5", "AP@.5", "AP@.75", "AP@.9", "DSB")
KEYS = ("dice", "iou", "f1", "ap50", "ap75", "ap90", "dsb")
_TIPS = (
    "",
    "Dice of the foreground pixels",
    "intersection over union of the foreground pixels",
    "object F1: objects matched one to one at IoU > 0.5",
    "average precision tp / (tp + fp + fn) at IoU 0.5",
    "average precision at IoU 0.75",
    "average precision at IoU 0.9",
    "DSB 2018 score: mean average precision over IoU 0.5, 0.55, ..., 0.95",
)


def score_table() -> QTableWidget:
    """Build an empty, read-only score table with a tooltip on every column."""
    table = QTableWidget(0, len(COLUMNS))
    table.setHorizontalHeaderLabels(COLUMNS)
    for c, tip in enumerate(_TIPS):
        table.horizontalHeaderItem(c).setToolTip(tip)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    table.setMinimumHeight(60)
    table.setMaximumHeight(200)
    return table


def fill_score_table(table: QTableWidget, rows: list[dict], mean: dict, *, stack: bool) -> None:
    """One row per slice (``"image"`` for a 2D image), then the mean for a stack."""
    lines = [(str(row["slice"]) if stack else "image", row) for row in rows]
    if stack:
        lines.append(("mean", mean))
    table.setRowCount(len(lines))
    for r, (label, values) in enumerate(lines):
        table.setItem(r, 0, QTableWidgetItem(label))
        for c, key in enumerate(KEYS, start=1):
            table.setItem(r, c, QTableWidgetItem(f"{values[key]:.3f}"))


def mean_text(rows: list[dict], mean: dict) -> str:
    """Write the stack's means in one line, for the label that stays in view."""
    text = ", ".join(
        f"{name} {mean[key]:.3f}" for name, key in zip(COLUMNS[1:], KEYS, strict=True)
    )
    return f"Mean over {len(rows)} slices: {text}"


def highlight_row(table: QTableWidget, old: int | None, new: int | None) -> None:
    """Move the highlight from row ``old`` to row ``new`` and scroll ``new`` into view."""
    for r, brush in ((old, QBrush()), (new, QBrush(_CURRENT))):
        if r is None or r >= table.rowCount():
            continue
        for c in range(table.columnCount()):
            item = table.item(r, c)
            if item is not None:
                item.setBackground(brush)
    if new is not None and new < table.rowCount():
        table.scrollToItem(table.item(new, 0))
