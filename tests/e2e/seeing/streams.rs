//! The commands that keep reading: `top --watch` prints one window after another, `tap` ends
//! when its reader goes and keeps up with the traffic.

use super::*;

/// `top --watch --json`: one array per window, each over the calls of that window only.
pub(super) fn top_watch_prints_a_window_after_another(m: &LocalMesh, gateway: u16) -> Result<()> {
    let (mut top, mut err) = spawn(m, "top", &["--watch", "--json", "--window", "1s"])?;
    wait_for(&mut err, "counting calls")?;
    let mut lines = BufReader::new(top.0.stdout.take().context("top stdout")?).lines();
    let mut windows = Vec::new();
    for calls in [3, 0] {
        for _ in 0..calls {
            ensure!(http::get(gateway, "/service-c/info", &[])?.status == 200);
        }
        let line = lines.next().context("top --watch ended")??;
        windows.push(serde_json::from_str::<Value>(&line)?);
    }
    // The calls fell into the first window (or, late, the second), once.
    let counted: u64 = windows
        .iter()
        .flat_map(|w| w.as_array().cloned().unwrap_or_default())
        .filter(|r| r["destination"] == "service-c" && r["source"] == GATEWAY_ID)
        .map(|r| r["requests"].as_u64().unwrap_or(0))
        .sum();
    ensure!(counted == 3, "{windows:?}");
    ensure!(top.0.try_wait()?.is_none(), "top --watch stopped by itself");
    Ok(())
}

/// `deployer tap | head -1`: once the reader is gone, the next line ends tap quietly, exit 0.
pub(super) fn tap_ends_when_its_reader_goes(m: &LocalMesh, gateway: u16) -> Result<()> {
    let (mut tap, mut tap_err) = spawn(m, "tap", &[])?;
    wait_for(&mut tap_err, "tapping")?;
    let mut stdout = BufReader::new(tap.0.stdout.take().context("tap stdout")?);
    ensure!(http::get(gateway, "/service-a/info", &[])?.status == 200);
    let mut first = String::new();
    stdout.read_line(&mut first)?;
    ensure!(first.contains("-> service-a"), "{first}");
    drop(stdout);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = tap.0.try_wait()? {
            break status;
        }
        ensure!(Instant::now() < deadline, "tap kept running with no reader");
        http::get(gateway, "/service-a/info", &[])?;
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut tap_err, &mut rest)?;
    ensure!(
        status.success() && rest.is_empty(),
        "tap ended with {status}: {rest}"
    );
    Ok(())
}

/// `tap --json` during 10 s of ≥ 1,000 req/s through the gateway: one line per request.
pub(super) fn tap_keeps_up(m: &LocalMesh, gateway: u16) -> Result<()> {
    let (mut tap, mut tap_err) = spawn(m, "tap", &["--json", "--to", "service-a"])?;
    wait_for(&mut tap_err, "tapping")?;
    let stdout = tap.0.stdout.take().context("tap stdout")?;
    let reader = std::thread::spawn(move || -> Vec<String> {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect()
    });
    let paths: Vec<String> = (0..40_000)
        .map(|i| format!("/service-a/info?n={i}"))
        .collect();
    let stop = AtomicBool::new(false);
    let load = Load {
        port: gateway,
        connections: 16,
        paths: &paths,
        stop: Some(&stop),
        deadline: Duration::from_secs(10),
        keep_alive: true,
    };
    let begun = Instant::now();
    let outcomes = load.run();
    let took = begun.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let sent = outcomes.len();
    let ok = outcomes.iter().filter(|o| o.status == Some(200)).count();
    let rate = sent as f64 / took;
    eprintln!("tap: {sent} requests in {took:.1} s ({rate:.0} req/s), {ok} answered 200");
    ensure!(ok == sent, "{} of {sent} requests failed", sent - ok);
    ensure!(rate >= 1000.0, "only {rate:.0} req/s");
    // Envoy writes its access log every 0.1 s; then Ctrl-C, and tap ends cleanly.
    std::thread::sleep(Duration::from_millis(600));
    let pid = tap.0.id();
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    let status = tap.0.wait()?;
    ensure!(status.success(), "tap ended with {status}");
    let lines = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    ensure!(
        lines.len() == sent,
        "{} lines for {sent} requests",
        lines.len()
    );
    let sample: Value = serde_json::from_str(&lines[lines.len() / 2])?;
    ensure!(sample["source"] == GATEWAY_ID, "{sample}");
    ensure!(sample["destination"] == "service-a", "{sample}");
    ensure!(sample["version"] == "v1", "{sample}");
    ensure!(sample["method"] == "GET", "{sample}");
    ensure!(
        sample["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/info?n=")),
        "{sample}"
    );
    ensure!(sample["status"] == 200, "{sample}");
    ensure!(sample["verified"] == true, "{sample}");
    ensure!(sample["latency_ms"].is_u64(), "{sample}");
    ensure!(
        sample["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{sample}"
    );
    // Every request seen exactly once.
    let mut seen: Vec<u64> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["path"].as_str()?.strip_prefix("/info?n=")?.parse().ok())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    ensure!(seen.len() == sent, "{} distinct of {sent}", seen.len());
    Ok(())
}
