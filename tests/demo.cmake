# vit-infer tests: images in, answers out. The bundled demo model's held-out images through
# decode + vit_session_run_images, against timm's stored predictions (CPU; CUDA when a device
# exists), plus vit_session_run_images against host preprocessing + vit_session_run.
vit_add_test(test_demo test_demo.cpp model_fixture.cpp LIBS vit vit_cpu vit_image vit_golden_cases)
