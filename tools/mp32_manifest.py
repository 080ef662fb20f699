# Frozen modules of the 32-bit measuring build (mk/mp32.mk): asyncio, as the unix port has it.
include("$(MPY_DIR)/extmod/asyncio")  # noqa: F821 - manifest function
