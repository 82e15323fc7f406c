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

/// A lazily doubled list walked by minijinja itself (`~` prints it): in
/// minijinja 3.1.0 these walks were not charged, and past 32 levels of
/// concatenation the list was flattened eagerly, which aborted the process
/// on allocation failure. jing's patched minijinja (vendor/minijinja,
/// JING_PATCH.md) charges every item any walk visits.
#[test]
fn lazy_list_doubling_is_bounded_upstream() {
    let (r, t) = render(
        "{% set ns = namespace(l=[1]) %}{% for i in range(31) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l ~ '' }}",
    );
    assert!(
        matches!(r, Err(TemplateError::OutOfFuel { fuel: 2_000_000 })),
        "{r:?}"
    );
    assert!(t < QUICK, "{t:?}");
}

/// Renders `source` under a small fuel budget and expects it to stop with
/// one of `allowed`, quickly.
fn assert_stops(source: &str, fuel: u64, allowed: fn(&TemplateError) -> bool) {
    let limits = RenderLimits {
        fuel,
        ..RenderLimits::default()
    };
    let (r, t) = render_with(source, limits);
    match &r {
        Err(e) if allowed(e) => {}
        other => panic!("{source}: {other:?}"),
    }
    assert!(t < QUICK, "{source}: {t:?}");
}

fn out_of_fuel(e: &TemplateError) -> bool {
    matches!(e, TemplateError::OutOfFuel { .. })
}

/// Values nested deeper than 256 levels (or containing themselves).
fn too_deep(e: &TemplateError) -> bool {
    matches!(e, TemplateError::RecursionLimit { limit: 256 })
}

/// Every way minijinja itself walks a value (printing it for `~`, a filter
/// or a test that wants a string; comparing, hashing, searching, sorting,
/// unpacking, indexing from the end, flattening) pays per item, so a list
/// that stands for 2^31 items built by 31 cheap doublings runs out of fuel.
#[test]
fn lazily_huge_lists_are_bounded_in_minijinja() {
    let build = "{% set ns = namespace(l=[1]) %}{% for i in range(31) %}{% set ns.l = ns.l + ns.l %}{% endfor %}";
    for tail in [
        "{{ ns.l ~ '' }}",
        "{{ ns.l|upper }}",
        "{{ ns.l|lower }}",
        "{{ ns.l|safe }}",
        "{{ ns.l|escape }}",
        "{{ ns.l|capitalize }}",
        "{{ ns.l|title }}",
        "{{ ns.l|indent }}",
        "{{ ns.l|replace('1', '2') }}",
        "{{ ns.l|pprint }}",
        "{{ '%s'|format(ns.l) }}",
        "{{ '{}'.format(ns.l) }}",
        "{{ ns.l is startingwith('x') }}",
        "{{ ns.l|join }}",
        "{{ ''.join(ns.l) }}",
        "{{ ns.l|list|length }}",
        "{{ ns.l|sum }}",
        "{{ ns.l|max }}",
        "{{ ns.l|sort|first }}",
        "{{ ns.l|unique|list }}",
        "{{ ns.l|batch(3)|length }}",
        "{{ ns.l|map('string')|list|length }}",
        "{{ ns.l|select|list|length }}",
        "{{ ns.l|last }}",
        "{{ ns.l[-1] }}",
        "{{ ns.l[::-1]|length }}",
        "{{ ns.l|reverse|first }}",
        "{{ 2 in ns.l }}",
        "{{ ns.l == ns.l + [] }}",
        "{{ {ns.l: 1}|length }}",
        "{{ dict(a=ns.l) ~ '' }}",
        "{% set a, b = ns.l %}",
        "{% for x in ns.l %}{{ loop.changed(x) }}{% endfor %}",
    ] {
        assert_stops(&format!("{build}{tail}"), 300_000, out_of_fuel);
    }
    // Past 32 levels minijinja flattens the concatenation: paid per item.
    for count in [33, 40, 64] {
        let source = format!(
            "{{% set ns = namespace(l=[1]) %}}{{% for i in range({count}) %}}{{% set ns.l = ns.l + ns.l %}}{{% endfor %}}{{{{ ns.l|length }}}}"
        );
        assert_stops(&source, 300_000, out_of_fuel);
    }
    // Other lazy sequences and iterables, doubled the same way.
    for start in [
        "[1] * 100000000",
        "range(10)|select",
        "(1, 2)",
        "range(100000)",
    ] {
        let source = format!(
            "{{% set ns = namespace(l={start}) %}}{{% for i in range(40) %}}{{% set ns.l = ns.l + ns.l %}}{{% endfor %}}{{{{ ns.l ~ '' }}}}"
        );
        assert_stops(&source, 300_000, out_of_fuel);
    }
    // A macro doubling its argument needs no namespace.
    assert_stops(
        "{% macro f(l, n) %}{% if n %}{{ f(l + l, n - 1) }}{% else %}{{ l ~ '' }}{% endif %}{% endmacro %}{{ f([1], 40) }}",
        300_000,
        out_of_fuel,
    );
}

/// A list, tuple, dict or namespace holding the previous one twice, 40
/// times over, is 40 small values that print as 2^40 items: every walk pays
/// for every item it visits, shared or not.
#[test]
fn shared_values_are_bounded() {
    for (start, step) in [
        ("[1]", "[ns.t, ns.t]"),
        ("(1,)", "(ns.t, ns.t)"),
        ("{'a': 1}", "{'a': ns.t, 'b': ns.t}"),
        ("{'a': 1}", "dict(a=ns.t, b=ns.t)"),
        ("namespace(a=1)", "namespace(a=ns.t, b=ns.t)"),
    ] {
        let build = format!(
            "{{% set ns = namespace(t={start}) %}}{{% for i in range(40) %}}{{% set ns.t = {step} %}}{{% endfor %}}"
        );
        for tail in [
            "{{ ns.t ~ '' }}",
            "{{ ns.t|upper }}",
            "{{ ns.t|string }}",
            "{{ ns.t|pprint }}",
            "{{ ns.t|tojson }}",
            "{{ {ns.t: 1}|length }}",
        ] {
            assert_stops(&format!("{build}{tail}"), 300_000, out_of_fuel);
        }
    }
    // Comparing two equal but separately built copies walks both.
    let copies = "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}";
    for tail in [
        "{{ ns.a == ns.b }}",
        "{{ [ns.a, ns.b]|sort|length }}",
        "{{ [ns.a, ns.b]|unique|list|length }}",
        "{{ ns.a in [ns.b] }}",
    ] {
        assert_stops(&format!("{copies}{tail}"), 300_000, out_of_fuel);
    }
}

/// Values nested a hundred thousand levels deep (a few instructions per
/// level) used to overflow the stack when printed, compared, hashed or even
/// just dropped, aborting the process. Walks now stop at a nesting limit
/// with `RecursionLimit`, and drops do not recurse that deep.
#[test]
fn deeply_nested_values_do_not_overflow_the_stack() {
    for step in [
        "[ns.l]",
        "{'a': ns.l}",
        "(ns.l,)",
        "namespace(l=ns.l)",
        "dict(l=ns.l)",
    ] {
        let build = format!(
            "{{% set ns = namespace(l=[]) %}}{{% for i in range(100000) %}}{{% set ns.l = {step} %}}{{% endfor %}}"
        );
        // Built and dropped: fine.
        let (r, t) = render(&format!("{build}{{{{ ns.l|length }}}}"));
        assert_eq!(r.unwrap(), "1", "{step}");
        assert!(t < QUICK, "{step}: {t:?}");
        for tail in [
            "{{ ns.l ~ '' }}",
            "{{ ns.l|upper }}",
            "{{ {ns.l: 1}|length }}",
        ] {
            assert_stops(&format!("{build}{tail}"), 2_000_000, too_deep);
        }
        // jing's own walks print the outer levels and stop.
        for tail in [
            "{{ ns.l }}",
            "{{ ns.l|string|length }}",
            "{{ ns.l|pprint|length }}",
        ] {
            let (r, t) = render(&format!("{build}{tail}"));
            assert!(r.is_ok(), "{step} {tail}: {r:?}");
            assert!(t < QUICK, "{step} {tail}: {t:?}");
        }
    }
    // Comparing two equal but separately built copies.
    let copies = "{% set ns = namespace(a=[], b=[]) %}{% for i in range(100000) %}{% set ns.a = [ns.a] %}{% set ns.b = [ns.b] %}{% endfor %}";
    for tail in [
        "{{ ns.a == ns.b }}",
        "{{ [ns.a, ns.b]|sort|length }}",
        "{{ [ns.a, ns.b]|unique|list|length }}",
    ] {
        assert_stops(&format!("{copies}{tail}"), 2_000_000, too_deep);
    }
    // Lazy slices of lazy slices nest their iterators.
    for step in ["ns.l[0:]", "ns.l[::2]", "ns.l[1:] + [1]"] {
        assert_stops(
            &format!("{{% set ns = namespace(l=[1, 2, 3]) %}}{{% for i in range(100000) %}}{{% set ns.l = {step} %}}{{% endfor %}}{{{{ ns.l|list }}}}"),
            2_000_000,
            |e| too_deep(e) || out_of_fuel(e),
        );
    }
}

/// Work on long strings is charged by their length every time it is done,
/// not just once when the string is made: a loop comparing, hashing,
/// indexing, searching, sorting or testing a 3 MB string would otherwise
/// run for minutes on a few thousand fuel per iteration.
#[test]
fn long_strings_cost_fuel_every_time() {
    let build = "{% set s = 'x' * 3000000 %}{% set t = 'x' * 3000000 %}{% set u = 'é' * 1500000 %}";
    for body in [
        "{% if s == t %}{% endif %}",
        "{% if s < t %}{% endif %}",
        "{% set d = {s: 1} %}",
        "{{ messages[0][s] }}",
        "{{ messages[0].get(s) }}",
        "{{ u[-1] }}",
        "{{ u[1499999:] }}",
        "{{ s[:1] }}",
        "{% for c in s %}{% break %}{% endfor %}",
        "{{ s in [t] }}",
        "{{ s in 'x' }}",
        "{{ 'x'.count(s) }}",
        "{{ 'x'.startswith(s) }}",
        "{{ 'x'|replace(s, 'y') }}",
        "{{ loop.changed(s) }}",
        "{{ [s]|unique|length }}",
        "{{ [s, t]|sort|length }}",
        "{{ [s, t]|max|length }}",
        "{{ s is lower }}",
        "{{ s is startingwith(t) }}",
        "{{ s is endingwith(t) }}",
        "{{ 'x'.strip(s) }}",
        "{{ 'x'|trim(s) }}",
        "{{ strftime_now(s)|length }}",
    ] {
        let source = format!("{build}{{% for i in range(100000) %}}{body}{{% endfor %}}");
        assert_stops(&source, 300_000, out_of_fuel);
    }
}

/// Results whose size a template picks are paid for before they are made:
/// a `str.format` width used to abort the process on allocation failure,
/// and `split()`/`splitlines()` turned a short string into millions of
/// parts.
#[test]
fn sizes_chosen_by_the_template_are_paid_ahead() {
    for source in [
        "{{ '{:>1000000000000}'.format(1) }}",
        "{{ '{:.1000000000000}'.format(1.5) }}",
        "{{ '{:é^100000000}'.format(1) }}",
        "{{ '%1000000000000d'|format(1) }}",
        "{{ ('x ' * 10000000).split()|length }}",
        "{{ ('x,' * 10000000).split(',')|length }}",
        "{{ ('x\n' * 10000000).splitlines()|length }}",
        "{{ ('x ' * 10000000)|split|list|length }}",
        "{{ strftime_now('%c' * 15000000)|length }}",
    ] {
        assert_stops(source, 2_000_000, out_of_fuel);
    }
    // Ordinary uses are unaffected.
    let (r, _) = render("{{ '{:>6}|{:.2f}'.format('ab', 1.5) }}{{ 'a b'.split() }}{{ 'a\nb'.splitlines() }}{{ [1, 'x']|pprint }}");
    assert_eq!(r.unwrap(), "    ab|1.50['a', 'b']['a', 'b'][1, 'x']");
}

/// Engine bugs that panicked on some templates are errors: those two are
/// fixed in vendor/minijinja, and any other panic in a render is caught.
#[test]
fn engine_panics_are_errors() {
    let (r, _) = render("{% for x in [1] %}{{ loop.cycle() }}{% endfor %}");
    assert!(matches!(r, Err(TemplateError::Render { .. })), "{r:?}");
    let (r, _) = render("{{ '{:.65535e}'.format(1.5)|length }}");
    assert_eq!(r.unwrap(), "65541");
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
        "{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns ~ '' }}",
        "{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns|upper }}",
        "{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns|pprint|length }}",
        "{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ {ns: 1}|length }}",
        "{% set ns = namespace(a=1) %}{% set ns.me = [ns] %}{{ ns ~ '' }}",
        "{% set ns = namespace(a=1) %}{% set ns.me = [ns] %}{% set x = namespace(a=1) %}{% set x.me = [x] %}{{ ns.me == x.me }}",
        "{% set ns = namespace(a=1) %}{% set ns.me = [ns] %}{{ [ns]|unique|list|length }}",
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

/// The parser builds chains in a loop (`1 + 1 + ...`, `x.a.a...`,
/// `x|f|f...`, `not not ...`, `a if b else c if ...`, `elif`, dotted and
/// nested assignment targets), but each link nests the syntax tree one
/// level deeper, and compiling or dropping the tree recursed that deep: a
/// long chain overflowed the stack. Past 500 links (or 150 levels of
/// brackets) they are syntax errors; real templates chain a few dozen.
#[test]
fn long_chains_are_syntax_errors() {
    let long =
        |head: &str, link: &str, tail: &str, n: usize| format!("{head}{}{tail}", link.repeat(n));
    for source in [
        long("{{ 1", " + 1", " }}", 300_000),
        long("{{ 'a'", " ~ 'a'", " }}", 200_000),
        long("{{ 1", " and 1", " }}", 200_000),
        long("{{ 1", "|abs", " }}", 300_000),
        long("{{ 1", " is number", " }}", 150_000),
        long("{{ x", ".a", " }}", 300_000),
        long("{{ x", "[0]", " }}", 300_000),
        long("{{ x", "()", " }}", 300_000),
        long("{{ ", "not ", "1 }}", 300_000),
        long("{{ ", "-", "1 }}", 300_000),
        long("{{ 1", " if x else 1", " }}", 100_000),
        long("{% if x %}", "{% elif x %}", "{% endif %}", 100_000),
        long(
            "{% set ns = namespace() %}{% set ns",
            ".a",
            " = 1 %}",
            300_000,
        ),
        format!(
            "{{% set {}a{} = [1] %}}",
            "(".repeat(100_000),
            ",)".repeat(100_000)
        ),
        format!(
            "{{% for {}a{} in [] %}}{{% endfor %}}",
            "(".repeat(100_000),
            ",)".repeat(100_000)
        ),
        // A syntax error past column 65535 of a line.
        format!("{{{{ {} }}}}", "9".repeat(1_000_000)),
    ] {
        match ChatTemplate::new(&source, SpecialTokens::new()) {
            Err(TemplateError::Syntax { message, .. }) => assert!(
                ["too long", "recursion", "too large"]
                    .iter()
                    .any(|m| message.contains(m)),
                "{message}"
            ),
            other => panic!("{:.40}: {other:?}", source),
        }
    }
    // Just under the limit, chains compile and render.
    for (source, want) in [
        (long("{{ 1", " + 1", " }}", 499), "500"),
        (long("{{ 1", " if false else 1", " }}", 499), "1"),
        (
            long("{% if false %}", "{% elif false %}", "x{% endif %}", 499),
            "",
        ),
        (long("{{ 'a'", "|upper", "|length }}", 400), "1"),
    ] {
        let (r, _) = render(&source);
        assert_eq!(r.unwrap(), want, "{:.40}", source);
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
