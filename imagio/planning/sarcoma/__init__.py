"""Core-needle biopsy of an extremity soft-tissue sarcoma, planned by the needle planner.

The sarcoma rules (`rules`, data in imagio/data/sarcoma_biopsy.json) become roles and
constraints of `imagio.planning` (uninvolved compartments, septa into them, joints and bones
forbidden; the neurovascular bundle a margin structure; the entry within a tolerance of the
planned incision; the shortest tract favoured), so the same scorer, independent re-check and
report apply. `viable` maps the enhancing solid tumour (the tumour's own two components: a
fluid core and the solid part, split half-way) and picks targets well inside it;
`incision` gives the limb's long axis and the default incision line; `plan` ties it together
(one entry, 3-5 cores fanning into different viable regions, each checked, each specimen in
the viable map).
"""

from .plan import SarcomaPlan, plan_sarcoma_biopsy

__all__ = ["SarcomaPlan", "plan_sarcoma_biopsy"]
