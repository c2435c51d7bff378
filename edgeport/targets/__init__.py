"""Target profiles (data) and per-target data tables."""
from .profile import TARGET_NAMES, Plan, Profile, builtin_profiles, load_profile, resolve_plan

__all__ = ["TARGET_NAMES", "Plan", "Profile", "builtin_profiles", "load_profile", "resolve_plan"]
