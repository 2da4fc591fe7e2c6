"""The mixture tree of fractions mode (PHYSICS.md section 6).

Each node's value is its fraction within its siblings; a leaf's weight W_k is the
product of the values along its path. Every sibling group gets a Dirichlet prior; its
first K - 1 values are sampled parameters (named after the nodes) and the last one is
derived.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SiblingGroup", "MixtureTree"]


@dataclass(frozen=True)
class SiblingGroup:
    """One group of sibling nodes: their names, Dirichlet alphas and nominal values."""

    names: tuple
    alpha: tuple
    values: tuple


class MixtureTree:
    """A mixture tree: sibling groups in depth-first order and each leaf's path.

    Parameters
    ----------
    nodes : list of dict
        Config ``mixture`` nodes: {name, value, alpha (default 1), children (optional)}.
    drop : str, optional
        A leaf to remove (the background-only model): its siblings are renormalised and
        a group left with one member is fixed to 1.
    """

    def __init__(self, nodes: list[dict], drop: str | None = None):
        self.groups: list[SiblingGroup] = []
        self.leaves: list[str] = []
        self._paths: list[list[tuple[int, int]]] = []
        self._walk(self._without(nodes, drop), [])

    @staticmethod
    def _without(nodes: list[dict], drop: str | None) -> list[dict]:
        out = []
        for node in nodes:
            if node["name"] == drop and "children" not in node:
                continue
            node = dict(node)
            if "children" in node:
                node["children"] = MixtureTree._without(node["children"], drop)
            out.append(node)
        if drop is None:
            return out
        total = sum(n["value"] for n in out)
        return [dict(n, value=n["value"] / total) for n in out]

    def _walk(self, nodes: list[dict], path: list) -> None:
        if len(nodes) > 1:
            g = len(self.groups)
            self.groups.append(SiblingGroup(tuple(n["name"] for n in nodes),
                                            tuple(float(n.get("alpha", 1.0)) for n in nodes),
                                            tuple(float(n["value"]) for n in nodes)))
        for i, node in enumerate(nodes):
            here = path + ([(g, i)] if len(nodes) > 1 else [])
            if node.get("children"):
                self._walk(node["children"], here)
            else:
                self.leaves.append(node["name"])
                self._paths.append(here)

    @property
    def sampled_names(self) -> list[str]:
        """Names of the sampled fractions (all but the last node of each group)."""
        return [n for g in self.groups for n in g.names[:-1]]

    @property
    def derived_names(self) -> list[str]:
        return [g.names[-1] for g in self.groups]

    def group_values(self, x) -> list[list[float]]:
        """All K values of every group from the sampled fractions x (K - 1 per group);
        the last is 1 minus the others (clipped at 0 against rounding)."""
        out, i = [], 0
        for g in self.groups:
            head = [float(v) for v in x[i:i + len(g.names) - 1]]
            out.append(head + [max(1.0 - sum(head), 0.0)])
            i += len(head)
        return out

    def inside(self, x, tol: float = 1e-12) -> bool:
        """Whether the sampled fractions x lie on every group's simplex (the priors only
        give such x; an optimiser or a hand-made x may not)."""
        i = 0
        for g in self.groups:  # plain floats: called once per likelihood call
            head = [float(v) for v in x[i:i + len(g.names) - 1]]
            if min(head, default=0.0) < 0.0 or sum(head) > 1.0 + tol:
                return False
            i += len(head)
        return True

    def leaf_weights(self, x) -> np.ndarray:
        """W_k for every leaf (in `leaves` order) from the sampled fractions x."""
        vals = self.group_values(x)
        w = []
        for path in self._paths:
            p = 1.0
            for g, i in path:
                p *= vals[g][i]
            w.append(p)
        return np.array(w)

    def nominal(self) -> dict:
        """Nominal value of every node in a group, by name."""
        return {n: v for g in self.groups for n, v in zip(g.names, g.values)}
