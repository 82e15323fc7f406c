//! `jing bench`: the figures it reports are present, positive and consistent with each other
//! (no speed is asserted: machines differ and are shared).

mod common;

use common::{fixture, jing};

#[test]
fn bench_reports_speeds_against_the_measured_bandwidth() {
    let model = fixture("deepseek-v3-tiny");
    let r = jing(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "-p",
        "16",
        "-n",
        "4",
        "--reps",
        "2",
        "--bandwidth-mb",
        "16",
        "--threads",
        "2",
        "--json",
    ]);
    r.assert_ok();
    let v = r.json();
    for key in [
        "prefill_tok_s",
        "decode_tok_s",
        "decode_gb_s",
        "read_bandwidth_gb_s",
        "decode_roofline_tok_s",
        "decode_fraction_of_roofline",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {v}"));
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    assert_eq!(v["prompt_tokens"], 16);
    assert_eq!(v["gen_tokens"], 4);
    assert_eq!(v["decode_tok_s_all"].as_array().unwrap().len(), 2);
    let active = v["active_bytes_per_token"].as_f64().unwrap();
    let (tg, gbs) = (
        v["decode_tok_s"].as_f64().unwrap(),
        v["decode_gb_s"].as_f64().unwrap(),
    );
    assert!((tg * active / 1e9 - gbs).abs() <= 1e-9 * gbs.max(1.0));
    // The bandwidth before the first repetition and after each; each repetition is set against
    // the mean of the two around it, and the median of those fractions reported (of two: their
    // mean).
    let all = |key: &str| -> Vec<f64> {
        let a = v[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} missing: {v}"));
        a.iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let (bws, tgs) = (all("read_bandwidth_gb_s_all"), all("decode_tok_s_all"));
    assert_eq!(bws.len(), 3, "{v}");
    let fractions: Vec<f64> = (0..2)
        .map(|i| tgs[i] * active / ((bws[i] + bws[i + 1]) / 2.0 * 1e9))
        .collect();
    let want = (fractions[0] + fractions[1]) / 2.0;
    let got = v["decode_fraction_of_roofline"].as_f64().unwrap();
    assert!((got - want).abs() <= 1e-9 * want, "{got} against {want}");
}

#[test]
fn bench_refuses_zero_tokens() {
    jing(&["bench", "-n", "0"]).assert_clean_error(&["-n"]);
}
