# vit-infer CLI tests on image inputs: directories of mixed good / bad files, @list files,
# the default (bundled demo) model, ImageNet-1k labels, the progress bar, the README demo.
# The program runs through tests/cli_runner (child process, no shell, time limit).
vit_add_test(test_cli_images test_cli_images.cpp cli_runner.cpp model_fixture.cpp LIBS vit_cpu)
target_compile_definitions(test_cli_images PRIVATE VIT_INFER_BIN="$<TARGET_FILE:vit-infer>"
                           VIT_INSTALL_DATADIR="${CMAKE_INSTALL_FULL_DATADIR}/vit-infer")
add_dependencies(test_cli_images vit-infer)
