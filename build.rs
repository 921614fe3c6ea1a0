fn main() {
    // Exposes PyO3's `Py_3_12`, `Py_3_13`, ... cfgs so version-specific code can be gated.
    pyo3_build_config::use_pyo3_cfgs();
}
