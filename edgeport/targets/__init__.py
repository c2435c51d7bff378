"""Target profiles (data) and per-target data tables."""
from .profile import (PRECISIONS, TARGET_NAMES, Plan, Profile, builtin_profiles, load_profile,
                      resolve_plan)

__all__ = ["PRECISIONS", "TARGET_NAMES", "Plan", "Profile", "builtin_profiles", "load_profile",
           "resolve_plan"]
