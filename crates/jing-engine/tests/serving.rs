//! The serving engine (continuous batching) against the single-sequence path: whatever the
//! mix of requests, queueing, chunked prefill and prefix reuse, each request gets exactly the
//! tokens it gets when run alone.

mod common;
use common::fixture;
use std::time::{Duration, Instant};

use jing_engine::{
    Engine, EngineHandle, Event, Finish, FinishReason, GenerationRequest, RequestStream,
    SamplingParams, ServeConfig, SubmitError, TokenConstraint,
};

fn engine(name: &str) -> Engine {
    Engine::load(&fixture(name), Some(2), Some(256)).expect("fixture loads")
}

/// Prompts of different lengths, some sharing prefixes.
fn prompts() -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = Vec::new();
    for i in 0..10u32 {
        let len = 3 + (i as usize * 7) % 23;
        out.push(
            (0..len as u32)
                .map(|j| (j * 31 + i * 17) % 400 + 5)
                .collect(),
        );
    }
    // Two that extend the first prompt (prefix reuse from running or finished sequences).
    let mut longer = out[0].clone();
    longer.extend([7, 8, 9, 10]);
    out.push(longer.clone());
    longer.extend([11, 12]);
    out.push(longer);
    out
}

/// All events of a stream: the tokens and the finish.
fn drain(mut s: RequestStream) -> (Vec<u32>, Finish) {
    let mut ids = Vec::new();
    loop {
        match s.blocking_recv().expect("a stream ends with Finished") {
            Event::Token(t) => ids.push(t.id),
            Event::Finished(f) => return (ids, f),
            Event::Error(e) => panic!("engine error: {e}"),
        }
    }
}

fn wait_until(handle: &EngineHandle, what: &str, cond: impl Fn(&EngineHandle) -> bool) {
    let start = Instant::now();
    while !cond(handle) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {:?}",
            handle.stats()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn batched_generation_equals_solo_generation() {
    for model in ["deepseek-v3-tiny", "qwen2-tiny"] {
        let mut solo = engine(model);
        let max_tokens = 12;
        let expected: Vec<Vec<u32>> = prompts()
            .iter()
            .map(|p| {
                solo.generate(p, max_tokens, &SamplingParams::default(), &[], |_| true)
                    .unwrap()
            })
            .collect();
        // Few places and a small token budget: requests queue, prompts are prefilled in
        // chunks next to running decodes, and later prompts find earlier ones' prefixes.
        let cfg = ServeConfig {
            max_num_seqs: 4,
            max_batch_tokens: 8,
            ..ServeConfig::default()
        };
        let handle = EngineHandle::start(engine(model), cfg);
        let streams: Vec<RequestStream> = prompts()
            .into_iter()
            .map(|p| {
                handle
                    .submit(GenerationRequest::new(p, max_tokens))
                    .unwrap()
            })
            .collect();
        for (i, s) in streams.into_iter().enumerate() {
            let (ids, fin) = drain(s);
            assert_eq!(ids, expected[i], "{model}: request {i}");
            assert_eq!(fin.reason, FinishReason::Length);
            assert_eq!(fin.usage.completion_tokens, max_tokens);
            assert_eq!(fin.usage.prompt_tokens, prompts()[i].len());
        }
        let stats = handle.stats();
        assert!(stats.cached_prompt_tokens_total > 0, "{stats:?}");
        assert_eq!(stats.finished_length_total, prompts().len() as u64);
        wait_until(&handle, "idle", |h| h.is_idle());
    }
}

#[test]
fn a_finished_conversation_is_reused_as_a_prefix() {
    let handle = EngineHandle::start(engine("deepseek-v3-tiny"), ServeConfig::default());
    let first: Vec<u32> = (10..40).collect();
    let (answer, fin) = drain(
        handle
            .submit(GenerationRequest::new(first.clone(), 5))
            .unwrap(),
    );
    assert_eq!(fin.usage.cached_tokens, 0);
    // The next turn: the whole first exchange plus a new question.
    let mut second = first.clone();
    second.extend(&answer);
    second.extend([50, 51, 52]);
    let (ids, fin) = drain(
        handle
            .submit(GenerationRequest::new(second.clone(), 5))
            .unwrap(),
    );
    // The last answer token was never fed back, so its row is not cached.
    assert_eq!(fin.usage.cached_tokens, first.len() + answer.len() - 1);
    let mut solo = engine("deepseek-v3-tiny");
    let expected = solo
        .generate(&second, 5, &SamplingParams::default(), &[], |_| true)
        .unwrap();
    assert_eq!(ids, expected);
}

#[test]
fn a_stop_id_ends_the_request_and_is_not_sent_as_a_token() {
    let prompt: Vec<u32> = (20..30).collect();
    let mut solo = engine("deepseek-v3-tiny");
    let free = solo
        .generate(&prompt, 6, &SamplingParams::default(), &[], |_| true)
        .unwrap();
    let handle = EngineHandle::start(engine("deepseek-v3-tiny"), ServeConfig::default());
    let mut req = GenerationRequest::new(prompt, 6);
    req.stop_ids = vec![free[2]];
    let (ids, fin) = drain(handle.submit(req).unwrap());
    let first_stop = free.iter().position(|&t| t == free[2]).unwrap();
    assert_eq!(ids, free[..first_stop]);
    assert_eq!(fin.reason, FinishReason::Stop);
    assert_eq!(fin.stop_token, Some(free[2]));
    assert_eq!(fin.usage.completion_tokens, first_stop + 1);
}

#[test]
fn logprobs_are_the_models_log_softmax() {
    let prompt: Vec<u32> = (30..45).collect();
    let mut solo = engine("deepseek-v3-tiny");
    let logits = solo.score(&prompt).unwrap();
    let last = logits.row(prompt.len() - 1);
    let handle = EngineHandle::start(engine("deepseek-v3-tiny"), ServeConfig::default());
    let mut req = GenerationRequest::new(prompt, 1);
    req.logprobs = Some(5);
    let mut s = handle.submit(req).unwrap();
    let Some(Event::Token(t)) = s.blocking_recv() else {
        panic!("a token first")
    };
    let lp = t.logprob.expect("logprobs were asked for");
    let z: f64 = last.iter().map(|&v| (v as f64).exp()).sum();
    let want = last[t.id as usize] as f64 - z.ln();
    assert!(
        (lp.logprob as f64 - want).abs() < 1e-4,
        "{} vs {want}",
        lp.logprob
    );
    assert_eq!(lp.top.len(), 5);
    // Greedy: the chosen token is the most likely one.
    assert_eq!(lp.top[0].0, t.id);
    assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
}

#[test]
fn a_dropped_stream_frees_its_place_within_a_step() {
    let handle = EngineHandle::start(engine("deepseek-v3-tiny"), ServeConfig::default());
    let mut s = handle
        .submit(GenerationRequest::new((1..20).collect(), 200))
        .unwrap();
    assert!(matches!(s.blocking_recv(), Some(Event::Token(_))));
    drop(s);
    wait_until(&handle, "the cancelled request to leave", |h| {
        h.stats().running == 0
    });
    let stats = handle.stats();
    assert_eq!(stats.cancelled_total, 1);
    assert!(stats.generation_tokens_total < 200, "{stats:?}");
}

#[test]
fn bad_requests_are_refused_before_any_work() {
    let handle = EngineHandle::start(engine("deepseek-v3-tiny"), ServeConfig::default());
    let vocab = handle.vocab_size() as u32;
    let refuse = |req: GenerationRequest| handle.submit(req).err().expect("refused");
    assert!(matches!(
        refuse(GenerationRequest::new(vec![], 4)),
        SubmitError::Invalid(_)
    ));
    assert!(matches!(
        refuse(GenerationRequest::new(vec![1], 0)),
        SubmitError::Invalid(_)
    ));
    assert!(matches!(
        refuse(GenerationRequest::new(vec![vocab], 4)),
        SubmitError::Invalid(m) if m.contains(&vocab.to_string())
    ));
    let mut hot = GenerationRequest::new(vec![1], 4);
    hot.params.temperature = -1.0;
    assert!(matches!(refuse(hot), SubmitError::Invalid(m) if m.contains("temperature")));
    let mut bias = GenerationRequest::new(vec![1], 4);
    bias.params.logit_bias = vec![(vocab + 3, 1.0)];
    assert!(matches!(refuse(bias), SubmitError::Invalid(m) if m.contains("logit_bias")));
    assert!(matches!(
        refuse(GenerationRequest::new(vec![1; 250], 10)),
        SubmitError::TooLong {
            needed: 260,
            limit: 256,
            ..
        }
    ));
    handle.stop_accepting();
    assert_eq!(
        refuse(GenerationRequest::new(vec![1], 4)),
        SubmitError::ShuttingDown
    );
    assert_eq!(handle.stats().waiting, 0);
}

#[test]
fn a_full_queue_refuses_and_abort_ends_everything() {
    let cfg = ServeConfig {
        max_num_seqs: 1,
        max_waiting: 2,
        ..ServeConfig::default()
    };
    let handle = EngineHandle::start(engine("deepseek-v3-tiny"), cfg);
    let mut running = handle
        .submit(GenerationRequest::new(vec![1, 2, 3], 240))
        .unwrap();
    assert!(matches!(running.blocking_recv(), Some(Event::Token(_))));
    let queued: Vec<RequestStream> = (0..2)
        .map(|_| {
            handle
                .submit(GenerationRequest::new(vec![4, 5], 4))
                .unwrap()
        })
        .collect();
    assert!(matches!(
        handle.submit(GenerationRequest::new(vec![6], 4)),
        Err(SubmitError::QueueFull { waiting: 2 })
    ));
    handle.abort_all("shutting down");
    let ends_in_error = |mut s: RequestStream| loop {
        match s.blocking_recv() {
            Some(Event::Token(_)) => continue,
            Some(Event::Error(m)) => return m,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(ends_in_error(running), "shutting down");
    for s in queued {
        assert_eq!(ends_in_error(s), "shutting down");
    }
    wait_until(&handle, "idle", |h| h.is_idle());
}

/// Allows even token ids only, and is complete after three tokens.
struct EvenTokens {
    seen: usize,
}

impl TokenConstraint for EvenTokens {
    fn mask(&mut self, logits: &mut [f32]) -> Result<(), String> {
        for (i, v) in logits.iter_mut().enumerate() {
            if i % 2 == 1 {
                *v = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }
    fn commit(&mut self, token: u32) -> Result<(), String> {
        if token % 2 == 1 {
            return Err(format!("odd token {token} sampled"));
        }
        self.seen += 1;
        Ok(())
    }
    fn is_finished(&self) -> bool {
        self.seen == 3
    }
}

#[test]
fn a_constraint_masks_the_tokens_and_ends_the_request() {
    let handle = EngineHandle::start(engine("deepseek-v3-tiny"), ServeConfig::default());
    let mut req = GenerationRequest::new((40..50).collect(), 10);
    req.params.temperature = 1.0;
    req.params.seed = 7;
    req.constraint = Some(Box::new(EvenTokens { seen: 0 }));
    let (ids, fin) = drain(handle.submit(req).unwrap());
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|t| t % 2 == 0), "{ids:?}");
    assert_eq!(fin.reason, FinishReason::Stop);
    assert_eq!(fin.stop_token, None);
}

#[test]
fn seeded_sampling_is_reproducible_in_a_batch() {
    let handle = EngineHandle::start(engine("deepseek-v3-tiny"), ServeConfig::default());
    let req = |seed| {
        let mut r = GenerationRequest::new((60..70).collect(), 16);
        r.params.temperature = 1.0;
        r.params.seed = seed;
        r
    };
    let a = handle.submit(req(1)).unwrap();
    let b = handle.submit(req(1)).unwrap();
    let c = handle.submit(req(2)).unwrap();
    let (a, b, c) = (drain(a).0, drain(b).0, drain(c).0);
    assert_eq!(a, b);
    assert_ne!(a, c);
}
