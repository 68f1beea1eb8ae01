//! The report body's JSON Schema, as the tests hold bodies to it.

use serde_json::Value;

/// The body validates against docs/report.schema.json.
pub fn assert_valid(body: &Value) {
    let schema: Value = serde_json::from_str(include_str!("../../docs/report.schema.json"))
        .expect("schema is JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("report.schema.json", schema)
        .expect("schema loads");
    let index = compiler
        .compile("report.schema.json", &mut schemas)
        .expect("schema compiles");
    if let Err(e) = schemas.validate(body, index) {
        panic!("{body:#}\ndoes not validate: {e:#}");
    }
}
