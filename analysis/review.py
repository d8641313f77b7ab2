"""Review states of detected slumps and the pure rules that move a feature between them.

The detection engine writes every polygon as ``unreviewed`` with its model score in
``orig_score`` and its model outline in ``orig_wkt``. The user's own actions then set the
state: reshaping makes it ``edited``, drawing a new one makes it ``added``, the dock's
Confirm and Reject make it ``confirmed`` or ``rejected``. Rejected features are kept (they
become negative training examples) and nothing here ever touches the ``orig_*`` fields, so
the model's output can always be recovered.

These rules hold no QGIS code; ``ui/review_tracker.py`` and ``ui/review_panel.py`` call them.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

UNREVIEWED, CONFIRMED, EDITED, ADDED, REJECTED = "unreviewed", "confirmed", "edited", "added", "rejected"
REVIEW_STATES = (UNREVIEWED, CONFIRMED, EDITED, ADDED, REJECTED)

REVIEW_FIELD = "review"
ORIG_SCORE_FIELD = "orig_score"
ORIG_WKT_FIELD = "orig_wkt"
SCORE_FIELD = "score_mean"
# Fields that hold the model's original output; review code must never write them.
ORIGINAL_FIELDS = (ORIG_SCORE_FIELD, ORIG_WKT_FIELD)

# What each state means for training labels.
POSITIVE, NEGATIVE, IGNORE = "positive", "negative", "ignore"
# ARTS layers mark non-slump training areas with TrainClass=Negative.
TRAIN_CLASS_FIELD = "TrainClass"


def is_negative_label(properties: Dict[str, Any]) -> bool:
    """An ARTS polygon marked TrainClass=Negative: a non-slump area, never a slump."""
    return str(properties.get(TRAIN_CLASS_FIELD) or "").strip().lower() == "negative"


def normalise_state(value: Any) -> str:
    """A stored review value as one of REVIEW_STATES (NULL, empty or unknown -> unreviewed)."""
    if value is None:
        return UNREVIEWED
    text = str(value).strip().lower()
    # QGIS hands NULL attributes to Python as a QVariant whose str() is "NULL".
    return text if text in REVIEW_STATES else UNREVIEWED


def after_geometry_change(current: Any) -> str:
    """A reshaped feature is edited; one the user drew stays added, and a rejected one stays
    rejected (rejection is an explicit decision: only Confirm takes it back)."""
    state = normalise_state(current)
    if state in (ADDED, REJECTED):
        return state
    return EDITED


def after_add() -> str:
    return ADDED


def after_confirm(current: Any) -> str:
    """Confirm marks a model outline as right; edited and added features are already the
    user's own outlines, so they keep the more telling state."""
    state = normalise_state(current)
    if state in (EDITED, ADDED):
        return state
    return CONFIRMED


def after_reject(current: Any) -> str:
    """Reject keeps the feature and marks it rejected, whatever it was."""
    return REJECTED


def training_class(state: Any, unreviewed: str = POSITIVE) -> str:
    """Training meaning of a review state: rejected -> negative, unreviewed -> ``unreviewed``
    (positive by default: exporting an unreviewed layer means trusting it; pass IGNORE to mask
    it out instead), anything else -> positive."""
    state = normalise_state(state)
    if state == REJECTED:
        return NEGATIVE
    if state == UNREVIEWED:
        if unreviewed not in (POSITIVE, NEGATIVE, IGNORE):
            raise ValueError(f"unreviewed must be positive, negative or ignore, got {unreviewed!r}")
        return unreviewed
    return POSITIVE


def review_order(items: Iterable[Tuple[Any, Any, Optional[float]]]) -> List[Any]:
    """Feature ids still unreviewed, lowest score first (the most doubtful first).

    ``items`` are ``(feature_id, review_value, score)``; a missing score sorts first, since
    nothing is known about it. Ties keep id order so walking is predictable.
    """
    pending = []
    for fid, state, score in items:
        if normalise_state(state) != UNREVIEWED:
            continue
        try:
            value = float(score) if score is not None else None
        except (TypeError, ValueError):
            value = None
        pending.append((value is not None, value if value is not None else 0.0, fid))
    pending.sort(key=lambda t: (t[0], t[1], t[2]))
    return [fid for _, _, fid in pending]
