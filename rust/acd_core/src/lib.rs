//! SparkleComm's routing engine core, compiled (Python module `sparklecomm.acd._acd_core`).
//!
//! A port of the pure-Python engine in `src/sparklecomm/acd/` that must behave exactly like
//! it: same events, same errors, same snapshots. The Python engine stays the reference; the
//! differential tests in `tests/routing/compiled/` run both on the same commands.
//! Progress and the plan: docs/routing-core.md.

use pyo3::prelude::*;

pub mod engine;
pub mod expr;
pub mod glue;
pub mod kpi;
pub mod model;
pub mod mt;
pub mod pyfast;
pub mod ready;
pub mod sorted;
pub mod types;

/// The core's version and the PyO3 it was built with, for `sparklecomm doctor`-style checks.
#[pyfunction]
fn build_info() -> (&'static str, &'static str) {
    (env!("CARGO_PKG_VERSION"), "pyo3-0.17")
}

#[pymodule]
fn _acd_core(_py: Python<'_>, m: &PyModule) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    m.add_class::<expr::CompiledExpression>()?;
    m.add_class::<ready::ReadyIndexForTests>()?;
    m.add_class::<engine::CompiledEngine>()?;
    m.add_class::<kpi::KpiCore>()?;
    // glue.rs / mt.rs, test-only bindings (tests/routing/compiled/test_glue.py):
    m.add_function(wrap_pyfunction!(glue::py_iso_text, m)?)?;
    m.add_function(wrap_pyfunction!(glue::py_datetime_from_us, m)?)?;
    m.add_function(wrap_pyfunction!(glue::py_seconds_to_us, m)?)?;
    m.add_function(wrap_pyfunction!(glue::py_sec, m)?)?;
    m.add_function(wrap_pyfunction!(glue::py_make_event, m)?)?;
    m.add_function(wrap_pyfunction!(glue::event_path, m)?)?;
    m.add_function(wrap_pyfunction!(glue::sample_payload, m)?)?;
    m.add_function(wrap_pyfunction!(glue::py_raise_error, m)?)?;
    m.add_function(wrap_pyfunction!(glue::py_repr_str, m)?)?;
    m.add_function(wrap_pyfunction!(glue::glue_bench, m)?)?;
    m.add_class::<glue::PyMersenneTwister>()?;
    Ok(())
}
