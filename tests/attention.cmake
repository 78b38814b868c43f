# vit-infer attention maps: rollout math, rendering, PNG encoding, the CPU engine's
# attention_layers output (directly and through the C API), and `vit-infer attention`
# (a child process through tests/cli_runner).
vit_add_test(test_attention test_attention.cpp cli_runner.cpp model_fixture.cpp LIBS vit vit_cpu vit_image)
target_compile_definitions(test_attention PRIVATE VIT_INFER_BIN="$<TARGET_FILE:vit-infer>")
add_dependencies(test_attention vit-infer)
