//! Loading chat templates (from a tokenizer, a model directory, a file, a
//! raw `chat_template` value), choosing among named templates, input
//! checks, and the BOS rule.

mod common;

use jing_tokenizer::template::{
    ChatTemplate, RenderOptions, SpecialTokens, TemplateError, ADDITIONAL_TEMPLATES_DIR,
    CHAT_TEMPLATE_FILE,
};
use jing_tokenizer::Tokenizer;
use serde_json::json;

fn hi() -> Vec<serde_json::Value> {
    vec![json!({"role": "user", "content": "Hi"})]
}

#[test]
fn a_model_without_a_template_says_how_to_give_one() {
    let dir = common::model_dir(
        "no-template",
        Some(r#"{"bos_token": "<｜begin▁of▁sentence｜>"}"#),
        None,
    );
    let tokenizer = Tokenizer::from_model_dir(&dir).unwrap();
    let err = ChatTemplate::from_tokenizer(&tokenizer).unwrap_err();
    assert!(
        matches!(err, TemplateError::Missing { dir: None }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--chat-template FILE"), "{err}");

    let err = ChatTemplate::for_model(&dir, &tokenizer).unwrap_err();
    assert!(
        matches!(&err, TemplateError::Missing { dir: Some(d) } if *d == dir),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("--chat-template FILE") && msg.contains(&dir.display().to_string()),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn template_from_the_tokenizer_config_with_its_bos_and_eos() {
    let tokenizer = Tokenizer::from_model_dir(&common::fixtures_dir()).unwrap();
    let template = ChatTemplate::from_tokenizer(&tokenizer).unwrap();
    assert_eq!(template.names(), ["default"]);
    assert_eq!(
        template.special_tokens().get("bos_token"),
        Some(common::BOS)
    );
    assert_eq!(
        template.special_tokens().get("eos_token"),
        Some(common::EOS)
    );
    let messages = [
        json!({"role": "system", "content": "S"}),
        json!({"role": "user", "content": "Q"}),
        json!({"role": "assistant", "content": "<think>secret</think>A"}),
        json!({"role": "user", "content": "Q2"}),
    ];
    let prompt = template
        .render(
            &messages,
            &RenderOptions::default().with_generation_prompt(true),
        )
        .unwrap();
    assert_eq!(
        prompt,
        format!(
            "{}S<｜User｜>Q<｜Assistant｜>A{}<｜User｜>Q2<｜Assistant｜><think>\n",
            common::BOS,
            common::EOS
        )
    );
}

#[test]
fn bos_is_never_doubled() {
    let tokenizer = Tokenizer::from_model_dir(&common::fixtures_dir()).unwrap();
    let bos = tokenizer.bos_id().unwrap();
    // This tokenizer's post-processor adds BOS when asked to.
    assert_eq!(tokenizer.encode("x", true).unwrap()[0], bos);
    let template = ChatTemplate::from_tokenizer(&tokenizer).unwrap();
    let opts = RenderOptions::default().with_generation_prompt(true);
    let ids = template.render_ids(&tokenizer, &hi(), &opts).unwrap();
    assert_eq!(ids[0], bos);
    assert_eq!(ids.iter().filter(|&&id| id == bos).count(), 1, "{ids:?}");
    let text = template.render(&hi(), &opts).unwrap();
    assert_eq!(ids, tokenizer.encode(&text, false).unwrap());
}

#[test]
fn model_directory_files_take_priority() {
    let dir = common::model_dir(
        "template-files",
        Some(r#"{"bos_token": "<｜begin▁of▁sentence｜>", "chat_template": "from config"}"#),
        None,
    );
    let tokenizer = Tokenizer::from_model_dir(&dir).unwrap();
    assert_eq!(
        ChatTemplate::for_model(&dir, &tokenizer)
            .unwrap()
            .render(&hi(), &RenderOptions::default())
            .unwrap(),
        "from config"
    );

    std::fs::write(dir.join(CHAT_TEMPLATE_FILE), "{{ bos_token }}from file\n").unwrap();
    std::fs::create_dir(dir.join(ADDITIONAL_TEMPLATES_DIR)).unwrap();
    std::fs::write(
        dir.join(ADDITIONAL_TEMPLATES_DIR).join("tool_use.jinja"),
        "tools: {{ tools|length }}",
    )
    .unwrap();
    std::fs::write(
        dir.join(ADDITIONAL_TEMPLATES_DIR).join("notes.txt"),
        "ignored",
    )
    .unwrap();
    let template = ChatTemplate::for_model(&dir, &tokenizer).unwrap();
    assert_eq!(template.names(), ["default", "tool_use"]);
    assert_eq!(
        template.render(&hi(), &RenderOptions::default()).unwrap(),
        format!("{}from file", common::BOS)
    );
    let with_tools = RenderOptions::default().with_tools(vec![json!({"type": "function"})]);
    assert_eq!(template.render(&hi(), &with_tools).unwrap(), "tools: 1");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn named_templates_are_chosen_as_transformers_does() {
    let raw = json!([
        {"name": "default", "template": "default"},
        {"name": "tool_use", "template": "tool_use"},
        {"name": "rag", "template": "rag"}
    ]);
    let t = ChatTemplate::from_config_value(&raw, SpecialTokens::new()).unwrap();
    let r = |opts: RenderOptions| t.render(&hi(), &opts);
    assert_eq!(r(RenderOptions::default()).unwrap(), "default");
    assert_eq!(
        r(RenderOptions::default().with_tools(vec![])).unwrap(),
        "tool_use"
    );
    assert_eq!(
        r(RenderOptions::default().with_template_name("rag")).unwrap(),
        "rag"
    );
    assert!(matches!(
        r(RenderOptions::default().with_template_name("nope")),
        Err(TemplateError::UnknownName { ref available, .. }) if available == "default, tool_use, rag"
    ));

    // No "default": transformers refuses unless a name is given.
    let raw = json!({"a": "A", "b": "B"});
    let t = ChatTemplate::from_config_value(&raw, SpecialTokens::new()).unwrap();
    assert!(matches!(
        t.render(&hi(), &RenderOptions::default()),
        Err(TemplateError::NoDefault { .. })
    ));
    assert_eq!(
        t.render(&hi(), &RenderOptions::default().with_template_name("b"))
            .unwrap(),
        "B"
    );

    // A single template is used whatever its name.
    let t = ChatTemplate::from_config_value(
        &json!([{"name": "only", "template": "O"}]),
        SpecialTokens::new(),
    )
    .unwrap();
    assert_eq!(t.render(&hi(), &RenderOptions::default()).unwrap(), "O");

    for bad in [json!(3), json!([]), json!([{"name": "x"}]), json!({"a": 1})] {
        assert!(matches!(
            ChatTemplate::from_config_value(&bad, SpecialTokens::new()),
            Err(TemplateError::InvalidConfig { .. })
        ));
    }
}

#[test]
fn template_files() {
    let dir = common::temp_dir("template-file");
    let jinja = dir.join("t.jinja");
    std::fs::write(&jinja, "J{{ messages|length }}\r\n").unwrap();
    let specials = SpecialTokens::new();
    assert_eq!(
        ChatTemplate::from_file(&jinja, specials.clone())
            .unwrap()
            .render(&hi(), &RenderOptions::default())
            .unwrap(),
        "J1"
    );
    let config = dir.join("tokenizer_config.json");
    std::fs::write(
        &config,
        r#"{"chat_template": [{"name": "default", "template": "C"}]}"#,
    )
    .unwrap();
    assert_eq!(
        ChatTemplate::from_file(&config, specials.clone())
            .unwrap()
            .render(&hi(), &RenderOptions::default())
            .unwrap(),
        "C"
    );
    let bare = dir.join("bare.json");
    std::fs::write(&bare, r#""B""#).unwrap();
    assert_eq!(
        ChatTemplate::from_file(&bare, specials.clone())
            .unwrap()
            .names(),
        ["default"]
    );

    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{").unwrap();
    assert!(matches!(
        ChatTemplate::from_file(&broken, specials.clone()),
        Err(TemplateError::InvalidConfig { .. })
    ));
    let binary = dir.join("binary.jinja");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    assert!(matches!(
        ChatTemplate::from_file(&binary, specials.clone()),
        Err(TemplateError::InvalidConfig { .. })
    ));
    let missing = dir.join("missing.jinja");
    let err = ChatTemplate::from_file(&missing, specials.clone()).unwrap_err();
    assert!(
        matches!(err, TemplateError::Io { .. }) && err.to_string().contains("missing.jinja"),
        "{err}"
    );
    let syntax = dir.join("syntax.jinja");
    std::fs::write(&syntax, "{% if %}").unwrap();
    assert!(matches!(
        ChatTemplate::from_file(&syntax, specials),
        Err(TemplateError::Syntax { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_is_refused_clearly() {
    let t = ChatTemplate::new("{{ messages|length }}", SpecialTokens::new()).unwrap();
    let opts = RenderOptions::default();
    assert!(
        matches!(t.render(&[], &opts), Err(TemplateError::InvalidInput(m)) if m.contains("empty"))
    );
    assert!(matches!(
        t.render(&[json!("just text")], &opts),
        Err(TemplateError::InvalidInput(m)) if m.contains("messages[0]")
    ));
    for reserved in ["messages", "tools", "documents", "add_generation_prompt"] {
        let opts = RenderOptions::default().with_variable(reserved, json!(1));
        assert!(
            matches!(t.render(&hi(), &opts), Err(TemplateError::InvalidInput(_))),
            "{reserved}"
        );
    }
}

#[test]
fn variables_special_tokens_and_time() {
    let t = ChatTemplate::new(
        "{{ bos_token }}|{{ eos_token }}|{{ thinking }}|{{ strftime_now('%d %b %Y') }}",
        SpecialTokens::new()
            .with("bos_token", "<s>")
            .with("eos_token", "</s>"),
    )
    .unwrap();
    let mut opts = RenderOptions::default()
        .with_variable("thinking", json!(true))
        .with_variable("eos_token", json!("<override>"));
    opts.now = Some(1_722_000_309);
    assert_eq!(
        t.render(&hi(), &opts).unwrap(),
        "<s>|<override>|True|26 Jul 2024"
    );
    // Without a fixed time it is today's date, in UTC.
    assert!(t
        .render(&hi(), &RenderOptions::default())
        .unwrap()
        .ends_with(char::is_numeric));
    let t = t
        .with_special_tokens(SpecialTokens::new().with("bos_token", "B"))
        .unwrap();
    assert!(t
        .render(&hi(), &RenderOptions::default())
        .unwrap()
        .starts_with("B|||"));
    assert!(format!("{t:?}").contains("ChatTemplate"));
}

#[test]
fn null_fields_are_dropped_unless_kept() {
    let t = ChatTemplate::new("{{ messages[0].content is none }}", SpecialTokens::new()).unwrap();
    let msg = [json!({"role": "assistant", "content": null, "tool_calls": []})];
    assert_eq!(t.render(&msg, &RenderOptions::default()).unwrap(), "False");
    assert_eq!(
        t.render(&msg, &RenderOptions::default().with_keep_null_fields(true))
            .unwrap(),
        "True"
    );
}
