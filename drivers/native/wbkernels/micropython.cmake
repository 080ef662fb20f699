# User C module for CMake-based ports (esp32, rp2):
#   make USER_C_MODULES=/abs/path/to/drivers/native/wbkernels/micropython.cmake
add_library(usermod_wbkernels INTERFACE)

target_sources(usermod_wbkernels INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/wbkernels.c
    ${CMAKE_CURRENT_LIST_DIR}/wbk_core.c
)

target_include_directories(usermod_wbkernels INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

target_link_libraries(usermod INTERFACE usermod_wbkernels)
