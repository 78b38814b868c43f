# vit-infer hostile-input tests: bad models and bad inputs fed to the shipped program
# (tests/cli_runner: child process with a time limit); each must fail cleanly with a message
# naming the file and the problem while the good inputs of the same run are still classified.
find_package(ZLIB REQUIRED)  # crc32 / compress for hand-made PNG headers
vit_add_test(test_hostile test_hostile.cpp cli_runner.cpp model_fixture.cpp LIBS vit_cpu ZLIB::ZLIB)
target_compile_definitions(test_hostile PRIVATE VIT_INFER_BIN="$<TARGET_FILE:vit-infer>")
add_dependencies(test_hostile vit-infer)
