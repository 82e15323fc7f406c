//! `jing template`: the prompt and ids a model gets, checked against the template goldens made
//! by `scripts/make_template_goldens.py` with transformers' `apply_chat_template`.

mod common;

use common::{fixture, jing, TempDir};
use serde_json::{json, Value};

fn goldens() -> Value {
    let path = fixture("templates").join("goldens.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("goldens.json")).expect("JSON")
}

/// Every successful golden render of the R1 template, through the command line.
#[test]
fn renders_like_transformers_through_the_cli() {
    let g = goldens();
    let cases = g["renders"].as_array().expect("renders");
    let t = TempDir::new("template");
    let mut checked = 0;
    for case in cases {
        let plain = case.get("error").is_none()
            && case["keep_null_fields"] == json!(false)
            && case["variables"].as_object().is_none_or(|v| v.is_empty());
        if case["family"] != "deepseek-r1" || !plain {
            continue;
        }
        let conv = g["conversations"]
            .as_array()
            .expect("conversations")
            .iter()
            .find(|c| c["name"] == case["conversation"])
            .expect("the render's conversation");
        let messages = t.join("messages.json");
        std::fs::write(&messages, conv["messages"].to_string()).expect("write");
        let mut args = vec![
            "template".to_string(),
            "--model".into(),
            fixture("deepseek-v3-tiny").display().to_string(),
            "--chat-template".into(),
            fixture("templates")
                .join("deepseek-r1.jinja")
                .display()
                .to_string(),
            "--messages".into(),
            messages.display().to_string(),
            "--json".into(),
        ];
        if let Some(tools) = conv.get("tools").filter(|t| !t.is_null()) {
            let path = t.join("tools.json");
            std::fs::write(&path, tools.to_string()).expect("write");
            args.extend(["--tools".into(), path.display().to_string()]);
        }
        if case["add_generation_prompt"] == json!(true) {
            args.push("--add-generation-prompt".into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = jing(&refs);
        let v = out.assert_ok().json();
        assert_eq!(v["prompt"], case["text"], "{}", case["conversation"]);
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} golden renders checked");
}

/// The demo model's own template: one BOS, the prompt encoded without adding another.
#[test]
fn bos_is_added_once() {
    let t = TempDir::new("template-bos");
    let messages = t.join("m.json");
    std::fs::write(&messages, r#"[{"role":"user","content":"Hi"}]"#).expect("write");
    let out = jing(&[
        "template",
        "--messages",
        messages.to_str().expect("utf-8"),
        "--add-generation-prompt",
        "--json",
    ]);
    let v = out.assert_ok().json();
    let ids: Vec<u64> = v["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id"))
        .collect();
    assert_eq!(ids[0], 0);
    assert_ne!(ids[1], 0, "BOS twice");
}
