//! The bodies' JSON Schemas under docs/, as the tests hold bodies to them.

use serde_json::Value;

/// The body validates against docs/report.schema.json.
pub fn assert_valid(body: &Value) {
    assert_valid_against(
        body,
        "report.schema.json",
        include_str!("../../docs/report.schema.json"),
    );
}

/// A metrics push validates against docs/metrics.schema.json.
#[allow(dead_code)]
pub fn assert_valid_metrics(body: &Value) {
    assert_valid_against(
        body,
        "metrics.schema.json",
        include_str!("../../docs/metrics.schema.json"),
    );
}

/// A services push validates against docs/services.schema.json.
#[allow(dead_code)]
pub fn assert_valid_services(body: &Value) {
    assert_valid_against(
        body,
        "services.schema.json",
        include_str!("../../docs/services.schema.json"),
    );
}

pub fn assert_valid_containers(body: &Value) {
    assert_valid_against(
        body,
        "containers.schema.json",
        include_str!("../../docs/containers.schema.json"),
    );
}

/// The fields docs/metrics.schema.json requires as numbers that may not
/// be null: what the server refuses a metrics push without.
pub fn metrics_required_numbers() -> Vec<String> {
    let schema: Value = serde_json::from_str(include_str!("../../docs/metrics.schema.json"))
        .expect("schema is JSON");
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    required
        .iter()
        .filter_map(Value::as_str)
        .filter(|field| {
            matches!(
                schema["properties"][*field]["type"].as_str(),
                Some("number" | "integer")
            )
        })
        .map(str::to_string)
        .collect()
}

fn assert_valid_against(body: &Value, name: &str, text: &str) {
    let schema: Value = serde_json::from_str(text).expect("schema is JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource(name, schema).expect("schema loads");
    let index = compiler
        .compile(name, &mut schemas)
        .expect("schema compiles");
    if let Err(e) = schemas.validate(body, index) {
        panic!("{body:#}\ndoes not validate: {e:#}");
    }
}
