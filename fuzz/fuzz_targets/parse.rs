//! The text parser and the type checker: any input either fails with a
//! `ParseError` or gives a valid graph whose printout parses back to the same
//! printout.
#![no_main]

use kiln_ir::text::{parse, print};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(graph) = parse(src) else {
        return;
    };
    graph.validate().expect("a parsed graph is valid");
    let printed = print(&graph);
    let again = parse(&printed).unwrap_or_else(|e| panic!("the printout does not parse: {e}\n{printed}"));
    assert_eq!(print(&again), printed, "print -> parse -> print changed the graph");
});
