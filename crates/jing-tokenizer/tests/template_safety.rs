//! Hostile and broken templates end in a clear error, quickly, without
//! hanging, crashing or exhausting memory.

use std::time::{Duration, Instant};

use jing_tokenizer::template::{
    ChatTemplate, RenderLimits, RenderOptions, SpecialTokens, TemplateError,
};
use serde_json::json;

fn render_with(source: &str, limits: RenderLimits) -> (Result<String, TemplateError>, Duration) {
    let template = ChatTemplate::new(source, SpecialTokens::new())
        .and_then(|t| t.with_limits(limits))
        .unwrap_or_else(|e| panic!("{source}: {e}"));
    let start = Instant::now();
    let result = template.render(
        &[json!({"role": "user", "content": "Hi"})],
        &RenderOptions::default(),
    );
    (result, start.elapsed())
}

fn render(source: &str) -> (Result<String, TemplateError>, Duration) {
    render_with(source, RenderLimits::default())
}

/// Generous: a default-fuel render takes well under a second even unoptimized.
const QUICK: Duration = Duration::from_secs(20);

#[test]
fn endless_loop_runs_out_of_fuel() {
    let (r, t) =
        render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
    assert!(
        matches!(r, Err(TemplateError::OutOfFuel { fuel: 2_000_000 })),
        "{r:?}"
    );
    assert!(t < QUICK, "{t:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("fuel"), "{msg}");
}

#[test]
fn recursive_loop_is_stopped() {
    let (r, t) = render("{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}");
    assert!(
        matches!(
            r,
            Err(TemplateError::RecursionLimit { .. } | TemplateError::OutOfFuel { .. })
        ),
        "{r:?}"
    );
    assert!(t < QUICK, "{t:?}");
}

#[test]
fn deep_macro_recursion_hits_the_recursion_limit() {
    let (r, t) = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    assert!(
        matches!(r, Err(TemplateError::RecursionLimit { limit: 200 })),
        "{r:?}"
    );
    assert!(t < QUICK, "{t:?}");
    assert!(r.unwrap_err().to_string().contains("recursion limit"));
}

#[test]
fn memory_bombs_run_out_of_fuel() {
    for source in [
        "{{ 'x' * 1000000000000 }}",
        "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% set ns = namespace(s='abcdefgh') %}{% for i in range(64) %}{% set ns.s = ns.s.replace('a', ns.s) %}{% endfor %}",
        "{% set ns = namespace(l=['abcdefgh' * 8]) %}{% for i in range(40) %}{% set ns.l = ns.l * 2 %}{% endfor %}{{ ns.l|tojson }}",
    ] {
        let (r, t) = render(source);
        match &r {
            Err(TemplateError::OutOfFuel { .. }) => {}
            // minijinja's own cap on repeating a list.
            Err(TemplateError::Render { message }) if message.contains("too large") => {}
            other => panic!("{source}: {other:?}"),
        }
        assert!(t < QUICK, "{source}: {t:?}");
    }
}

/// A list doubled 31 times costs minijinja almost no fuel (concatenation is
/// lazy), but stands for 2^31 items: everything jing itself does with a
/// value (printing, `tojson`, `string`, `trim`, `wordcount`, `count`,
/// `raise_exception`) pays per item and stops.
#[test]
fn lazily_huge_lists_are_bounded_in_jings_own_code() {
    let build = "{% set ns = namespace(l=[1]) %}{% for i in range(31) %}{% set ns.l = ns.l + ns.l %}{% endfor %}";
    for tail in [
        "{{ ns.l }}",
        "{{ ns.l|tojson }}",
        "{{ {'a': ns.l}|tojson(indent=2) }}",
        "{{ ns.l|string|length }}",
        "{{ ns.l|trim }}",
        "{{ ns.l|wordcount }}",
        "{{ ns.l.count(1) }}",
        "{{ raise_exception(ns.l) }}",
        "{% for x in ns.l %}{% endfor %}",
    ] {
        let limits = RenderLimits {
            fuel: 300_000,
            ..RenderLimits::default()
        };
        let (r, t) = render_with(&format!("{build}{tail}"), limits);
        match r {
            Err(TemplateError::OutOfFuel { .. } | TemplateError::OutputTooLarge { .. }) => {}
            other => panic!("{tail}: {other:?}"),
        }
        assert!(t < QUICK, "{tail}: {t:?}");
    }
    // Its length is known without walking it.
    let (r, _) = render(&format!("{build}{{{{ ns.l|length }}}}"));
    assert_eq!(r.unwrap(), "2147483648");
}

/// Known gap in minijinja 3.1.0, not in jing: lazily concatenated lists are
/// not charged fuel, so after ~31 doublings minijinja's own string
/// conversions (`~`, `upper`, `safe`, `pprint`, `format`, ...) walk billions
/// of items, and past 32 levels of concatenation minijinja materializes the
/// list eagerly, which aborts the process on allocation failure. Only
/// templates from operator-installed models are rendered, never templates
/// from requests. Run with `--ignored` once minijinja charges for it.
#[test]
#[ignore = "minijinja 3.1.0 does not charge fuel for lazy list concatenation"]
fn lazy_list_doubling_is_bounded_upstream() {
    let (r, t) = render(
        "{% set ns = namespace(l=[1]) %}{% for i in range(31) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l ~ '' }}",
    );
    assert!(r.is_err() && t < QUICK, "{r:?} {t:?}");
}

#[test]
fn huge_output_is_capped() {
    let limits = RenderLimits {
        max_output_bytes: 1000,
        ..RenderLimits::default()
    };
    let (r, _) = render_with(
        "{% for i in range(1000) %}{{ 'abcdefghij' }}{% endfor %}",
        limits.clone(),
    );
    assert!(
        matches!(r, Err(TemplateError::OutputTooLarge { limit: 1000 })),
        "{r:?}"
    );
    let (r, _) = render_with("{{ 'y' * 5000 }}", limits.clone());
    assert!(
        matches!(r, Err(TemplateError::OutputTooLarge { limit: 1000 })),
        "{r:?}"
    );
    // Exactly at the limit is fine.
    let (r, _) = render_with("{{ 'z' * 1000 }}", limits);
    assert_eq!(r.unwrap().len(), 1000);
}

#[test]
fn raise_exception_carries_the_message() {
    let (r, _) = render("{% if messages[0].role != 'system' %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}");
    match r {
        Err(TemplateError::Raised { message }) => {
            assert_eq!(
                message,
                "Conversation roles must alternate user/assistant/user/assistant/..."
            )
        }
        other => panic!("{other:?}"),
    }
    // Raised inside a macro, a loop and a filter argument alike.
    let (r, _) = render("{% macro m() %}{% for x in [1] %}{{ [raise_exception('deep')]|length }}{% endfor %}{% endmacro %}{{ m() }}");
    assert!(
        matches!(r, Err(TemplateError::Raised { ref message }) if message == "deep"),
        "{r:?}"
    );
}

#[test]
fn self_containing_values_do_not_overflow() {
    for source in [
        "{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns|tojson }}",
        "{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns.me.me.me.a }}{{ ns|string|length > 0 }}",
    ] {
        let (r, t) = render(source);
        assert!(t < QUICK, "{source}: {t:?}");
        // Either an error or a bounded rendering: never a crash.
        if let Ok(text) = r {
            assert!(text.len() < 1 << 20, "{source}");
        }
    }
}

#[test]
fn broken_sources_are_syntax_errors() {
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
    let deep_blocks = "{% if true %}".repeat(50_000);
    for source in [
        "{% for x in %}",
        "{{ unclosed",
        "{% endfor %}",
        "{% if %}{% endif %}",
        deep.as_str(),
        deep_blocks.as_str(),
        "{{ x | nosuchfilter }}",
    ] {
        let t = ChatTemplate::new(source, SpecialTokens::new());
        match t {
            Err(TemplateError::Syntax { message, .. }) => assert!(!message.is_empty()),
            Err(other) => panic!("{:.40}: {other}", source),
            // Unknown filters are only found when rendering.
            Ok(t) => assert!(matches!(
                t.render(
                    &[json!({"role": "user", "content": "x"})],
                    &RenderOptions::default()
                ),
                Err(TemplateError::Render { .. })
            )),
        }
    }
}

#[test]
fn oversized_source_is_refused() {
    let big = "x".repeat(3 << 20);
    assert!(matches!(
        ChatTemplate::new(&big, SpecialTokens::new()),
        Err(TemplateError::SourceTooLarge { limit, .. }) if limit == 2 << 20
    ));
    let small = ChatTemplate::new("{{ messages|length }}", SpecialTokens::new()).unwrap();
    let limits = RenderLimits {
        max_source_bytes: 4,
        ..RenderLimits::default()
    };
    assert!(matches!(
        small.with_limits(limits),
        Err(TemplateError::SourceTooLarge { .. })
    ));
}

#[test]
fn include_and_import_find_nothing() {
    for source in [
        "{% include 'default' %}",
        "{% import 'default' as d %}",
        "{% extends 'default' %}",
    ] {
        let (r, _) = render(source);
        assert!(
            matches!(r, Err(TemplateError::Render { .. })),
            "{source}: {r:?}"
        );
    }
}

#[test]
fn hostile_inputs_are_just_data() {
    // Template syntax inside messages is never evaluated.
    let t = ChatTemplate::new(
        "{% for m in messages %}{{ m.content }}{% endfor %}",
        SpecialTokens::new(),
    )
    .unwrap();
    let content = "{{ raise_exception('x') }}{% for i in range(10**9) %}{% endfor %}";
    let out = t
        .render(
            &[json!({"role": "user", "content": content})],
            &RenderOptions::default(),
        )
        .unwrap();
    assert_eq!(out, content);
}

#[test]
fn renders_in_parallel() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ChatTemplate>();
    let t = ChatTemplate::new(
        "{{ strftime_now('%Y') }}{{ messages[0].content }}",
        SpecialTokens::new(),
    )
    .unwrap();
    std::thread::scope(|s| {
        for i in 0..4 {
            let t = t.clone();
            s.spawn(move || {
                let mut opts = RenderOptions::default();
                opts.now = Some(0);
                let out = t
                    .render(&[json!({"role": "user", "content": i.to_string()})], &opts)
                    .unwrap();
                assert_eq!(out, format!("1970{i}"));
            });
        }
    });
}
