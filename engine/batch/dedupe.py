"""Overlapping scenes: a slump seen in two scenes becomes one feature (rule in docs/BATCH.md).

* Two detections from the batch are the same slump when their overlap covers at least
  DUPLICATE_MIN_OVERLAP of the smaller one (one scene's engine output never overlaps itself,
  so in practice the two come from different scenes).
* Detections are taken best first: a complete outline before one cut by its scene's edge,
  then the higher mean score, then the larger area (then scene key and id, so the result
  does not depend on the order the scenes finished in).
* A detection that is the same slump as one already kept is merged into it: when the
  outlines agree (IoU > AGREE_IOU) the kept outline grows to their union, otherwise the
  better outline stays as it is. Either way its scene is added to the kept feature's sources.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

DUPLICATE_MIN_OVERLAP = 0.1
AGREE_IOU = 0.5


@dataclass
class Detection:
    geometry: BaseGeometry          # in the inventory's CRS
    properties: Dict[str, Any]      # the engine's fields
    scene: str                      # scene key
    source: str                     # scene file name
    cut_by_edge: bool = False       # touches its scene's footprint boundary: maybe incomplete


@dataclass
class Slump:
    """One inventory feature: the best detection, the detections merged into it."""

    geometry: BaseGeometry
    best: Detection
    members: List[Detection] = field(default_factory=list)
    unioned: bool = False

    @property
    def sources(self) -> List[str]:
        return list(dict.fromkeys(m.source for m in self.members))

    @property
    def scenes(self) -> List[str]:
        return list(dict.fromkeys(m.scene for m in self.members))


def rank(detection: Detection) -> Tuple:
    props = detection.properties
    return (detection.cut_by_edge, -float(props.get("score_mean") or 0.0), -float(props.get("area_m2") or 0.0),
            detection.scene, int(props.get("id") or 0))


def iou(a: BaseGeometry, b: BaseGeometry) -> float:
    union = a.union(b).area
    return a.intersection(b).area / union if union > 0 else 0.0


def deduplicate(detections: List[Detection]) -> List[Slump]:
    """The inventory's slumps, each detection merged into at most one of them."""
    ordered = sorted(detections, key=rank)
    tree = STRtree([d.geometry for d in ordered])
    owner: List[Optional[Slump]] = [None] * len(ordered)
    slumps: List[Slump] = []
    for index, detection in enumerate(ordered):
        neighbours = {id(owner[i]): owner[i] for i in tree.query(detection.geometry, predicate="intersects") if owner[i]}
        target = _same_slump(detection, list(neighbours.values()))
        if target is None:
            target = Slump(detection.geometry, detection, [detection])
            slumps.append(target)
        else:
            if iou(detection.geometry, target.geometry) > AGREE_IOU:
                target.geometry = shapely.make_valid(target.geometry.union(detection.geometry))
                target.unioned = True
            target.members.append(detection)
        owner[index] = target
    return slumps


def _same_slump(detection: Detection, kept: List[Slump]) -> Optional[Slump]:
    """The kept slump this detection overlaps most, if that overlap makes it the same slump."""
    best, best_overlap = None, 0.0
    for slump in kept:
        overlap = detection.geometry.intersection(slump.geometry).area
        smaller = min(detection.geometry.area, slump.geometry.area)
        if smaller > 0 and overlap >= DUPLICATE_MIN_OVERLAP * smaller and overlap > best_overlap:
            best, best_overlap = slump, overlap
    return best
