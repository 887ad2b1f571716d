//! The text format: see `print` and `parse`.

/// Prints `graph` in the text format. (Placeholder until the printer lands.)
pub fn print(graph: &crate::Graph) -> String {
    format!("fn {}() -> () {{}}\n", graph.name())
}
