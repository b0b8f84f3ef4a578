"""robonav.hil: see DESIGN.md (built by a later issue)."""
