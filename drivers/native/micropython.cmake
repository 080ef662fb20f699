# All native kernels as user C modules for CMake ports (esp32, rp2):
#   make BOARD=... USER_C_MODULES=/abs/path/to/drivers/native/micropython.cmake
include(${CMAKE_CURRENT_LIST_DIR}/wbkernels/micropython.cmake)
