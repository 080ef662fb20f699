# User C module for make-based ports (stm32, unix, ...):
#   make USER_C_MODULES=/abs/path/to/drivers/native
WBKERNELS_MOD_DIR := $(USERMOD_DIR)

SRC_USERMOD_C += $(WBKERNELS_MOD_DIR)/wbkernels.c $(WBKERNELS_MOD_DIR)/wbk_core.c
CFLAGS_USERMOD += -I$(WBKERNELS_MOD_DIR)
