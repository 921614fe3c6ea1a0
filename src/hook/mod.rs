//! How events arrive from CPython.
//!
//! `legacy`: the `Py_tracefunc` route (`PyEval_SetTrace`), the same C hook `sys.settrace`
//! uses; on 3.12+ CPython drives it from `sys.monitoring` itself.

pub mod legacy;
