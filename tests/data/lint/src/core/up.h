// Fixture of tests/lint.cmake: a leaf header reaching up to the public API (check_layers must fail).
#pragma once
#include "vit/vit.h"
