"""A call tree laid out as a flame graph: one rectangle per frame, for an inline SVG.

The root is at the top and callees below their callers (Sentry's and the browsers' "icicle"
orientation); a frame's width is its share of the samples. Frames narrower than
:data:`MIN_WIDTH` of the graph are not drawn (their samples still count in their callers'
widths). Each frame has a *path*: the indexes of the children taken from the root (children are
in a fixed order), so a link can focus the graph on any frame without state on the server.
"""

from __future__ import annotations

import dataclasses

from .aggregate import Node

#: Narrowest frame drawn, as a fraction of the graph's width.
MIN_WIDTH = 0.002
#: Deepest frame drawn.
MAX_DEPTH = 128
#: Height of one row in SVG units; the graph's width is :data:`WIDTH` units.
ROW = 18
WIDTH = 1200.0
#: About how many SVG units one character of a frame label takes.
CHAR = 7.0
#: Frames drawn at most (the widest first); a tree of more distinct frames loses its thinnest.
MAX_FRAMES = 5000


@dataclasses.dataclass(frozen=True)
class Rect:
    """One frame of the graph."""

    x: float
    y: float
    width: float
    depth: int
    function: str
    module: str
    file: str
    total: int
    self_count: int
    share: float
    #: The frame's path from the drawn root, dot-separated ("" for the root itself).
    path: str
    #: As much of the label as fits in the rectangle ("" when nothing fits).
    label: str

    @property
    def color(self) -> int:
        """A stable colour class (0..7) per module, so one module's frames look alike."""
        return sum(self.module.encode()) % 8 if self.module else 0


@dataclasses.dataclass
class Layout:
    rects: list[Rect]
    width: float
    height: float
    #: Samples under the drawn root.
    total: int
    #: Frames left out because they were too thin or too deep.
    hidden: int
    #: The frames from the tree's root down to the drawn root: ``(label, path)``.
    crumbs: list[tuple[str, str]]


def find(root: Node, path: str) -> tuple[Node, list[tuple[str, str]], str]:
    """The node at ``path`` (dot-separated child indexes) and the crumbs to it; the root (and an
    empty path) for a path that does not lead anywhere."""
    node = root
    crumbs: list[tuple[str, str]] = [("all", "")]
    taken: list[str] = []
    for part in [p for p in path.split(".") if p][:MAX_DEPTH]:
        children = node.sorted_children()
        if not part.isdigit() or int(part) >= len(children):
            return root, [("all", "")], ""
        node = children[int(part)]
        taken.append(part)
        crumbs.append((node.function, ".".join(taken)))
    return node, crumbs, ".".join(taken)


def label_of(node: Node) -> str:
    return f"{node.function} ({node.module})" if node.module else node.function


def _fit(text: str, width: float) -> str:
    chars = int(width / CHAR)
    if chars < 3:
        return ""
    return text if len(text) <= chars else text[: chars - 1] + "…"


def layout(root: Node, path: str = "") -> Layout:
    """The rectangles of the graph focused on the frame at ``path`` (the whole tree for "")."""
    top, crumbs, path = find(root, path)
    rects: list[Rect] = []
    hidden = 0
    total = max(1, top.total)
    # Breadth-first keeps the widest (shallowest) frames when MAX_FRAMES cuts.
    queue: list[tuple[Node, float, int, str]] = [(top, 0.0, 0, path)]
    head = 0
    while head < len(queue):
        node, x, depth, node_path = queue[head]
        head += 1
        share = node.total / total
        if len(rects) >= MAX_FRAMES:
            hidden += 1
            continue
        width = share * WIDTH
        label = label_of(node) if depth or node is not root else f"all ({node.total} samples)"
        rects.append(
            Rect(
                round(x, 3),
                depth * ROW,
                round(width, 3),
                depth,
                node.function,
                node.module,
                node.file,
                node.total,
                node.self_count,
                share,
                node_path,
                _fit(label, width),
            )
        )
        child_x = x
        for index, child in enumerate(node.sorted_children()):
            child_share = child.total / total
            child_path = f"{node_path}.{index}" if node_path else str(index)
            if child_share < MIN_WIDTH or depth + 1 >= MAX_DEPTH:
                hidden += 1
            else:
                queue.append((child, child_x, depth + 1, child_path))
            child_x += child_share * WIDTH
    height = (max((r.depth for r in rects), default=0) + 1) * ROW
    return Layout(rects, WIDTH, height, top.total, hidden, crumbs)
