"""``/api/history/period`` answered from the record, as HA's recorder would."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any, Final

import orjson

from homeiq.ha.simulator.core import Core
from homeiq.ha.simulator.encoding import dumps, iso_from_us
from homeiq.ha.simulator.model import Entity

ATTRS_MAX_BYTES: Final = 16384  # HA's recorder refuses to store larger attributes
# HA's recorder: these domains keep attribute-only rows in "significant" history and
# full rows in minimal responses.
_SIGNIFICANT_DOMAINS: Final = frozenset(
    {"climate", "device_tracker", "humidifier", "thermostat", "water_heater"}
)
_NEED_ATTRIBUTE_DOMAINS: Final = frozenset(
    {"climate", "humidifier", "input_datetime", "thermostat", "water_heater"}
)
# Attributes HA's light/climate integrations mark as unrecorded: live events carry them,
# history rows do not.
_UNRECORDED: Final = {
    "light": frozenset(
        {
            "min_color_temp_kelvin",
            "max_color_temp_kelvin",
            "min_mireds",
            "max_mireds",
            "effect_list",
            "supported_color_modes",
            "supported_features",
        }
    ),
    "climate": frozenset(
        {"hvac_modes", "min_temp", "max_temp", "target_temp_step", "supported_features"}
    ),
}


class History(Core):
    """History queries over the record, honouring ``history_keep_s``."""

    def history(
        self,
        entity_ids: Sequence[str],
        start_us: int,
        end_us: int,
        *,
        significant_changes_only: bool = True,
        minimal_response: bool = False,
        no_attributes: bool = False,
    ) -> list[list[dict[str, Any]]]:
        """What ``/api/history/period`` answers, from the record, honouring ``history_keep_s``."""
        lg = self._log
        key = lg.ts.__getitem__
        purged_before = self._clock.now_us() - int(self.history_keep_s * 1_000_000)
        out: list[list[dict[str, Any]]] = []
        for entity_id in entity_ids:
            ent = self._by_id.get(entity_id)
            if ent is None:
                continue
            pos = ent.rows
            lo = bisect_left(pos, purged_before, key=key)
            first = bisect_right(pos, start_us, lo=lo, key=key)
            stop = bisect_left(pos, end_us, lo=first, key=key)
            keep_all = ent.domain in _SIGNIFICANT_DOMAINS
            full_rows = not minimal_response or ent.domain in _NEED_ATTRIBUTE_DOMAINS
            rows: list[dict[str, Any]] = []
            prev: str | None = None
            if first > lo and lg.st[pos[first - 1]] >= 0:
                p = pos[first - 1]
                rows.append(self._history_row(ent, p, no_attributes, start_us))
                prev = lg.states[lg.st[p]]
            for j in range(first, stop):
                p = pos[j]
                st = lg.st[p]
                if st < 0:
                    prev = None
                    continue
                if significant_changes_only and not keep_all and lg.lc[p] != lg.ts[p]:
                    continue
                state = lg.states[st]
                if full_rows or not rows:
                    rows.append(self._history_row(ent, p, no_attributes, 0))
                elif state != prev:
                    rows.append({"state": state, "last_changed": iso_from_us(lg.ts[p])})
                prev = state
            if rows:
                out.append(rows)
        return out

    def _history_row(
        self, ent: Entity, p: int, no_attributes: bool, clamp_us: int
    ) -> dict[str, Any]:
        lg = self._log
        attrs: Any = {}
        if not no_attributes:
            cache_key = (lg.at[p], ent.domain)
            attrs = self._hist_attrs.get(cache_key)
            if attrs is None:
                raw = lg.attrs[lg.at[p]]
                if len(raw) > ATTRS_MAX_BYTES:
                    raw = b"{}"  # HA's recorder logs and stores no attributes
                elif (drop := _UNRECORDED.get(ent.domain)) is not None:
                    raw = dumps({k: v for k, v in orjson.loads(raw).items() if k not in drop})
                attrs = self._hist_attrs[cache_key] = orjson.Fragment(raw)
        return {
            "entity_id": ent.entity_id,
            "state": lg.states[lg.st[p]],
            "attributes": attrs,
            "last_changed": iso_from_us(max(lg.lc[p], clamp_us)),
            "last_updated": iso_from_us(max(lg.ts[p], clamp_us)),
            # HA's recorder does not keep contexts in history rows: a placeholder instead.
            "context": self._empty_ctx,
        }
