//! `bakeoff concurrency`: the burst timer against a small std server with a known number of
//! worker threads that each sleep T per request, and a `--quick` study of one real variant.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bakeoff::burst::{self, BurstSpec, Probe};
use bakeoff::results::ResultsFile;
use bakeoff::results::study::StudyResults;
use bakeoff::results::vocabulary::Workload;

use crate::support::{assert_svg, built_variant, render_report_again, run_bakeoff};

/// A server of `workers` threads: connections are read by a thread each, and their requests
/// queue for the workers, which sleep `delay` and answer (closing the connection), as a
/// thread-pool server with blocking handlers does.
fn sleeping_server(workers: usize, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (queue, jobs) = mpsc::channel::<TcpStream>();
    let jobs = Arc::new(Mutex::new(jobs));
    for _ in 0..workers {
        let jobs = Arc::clone(&jobs);
        std::thread::spawn(move || {
            loop {
                let next = jobs.lock().unwrap().recv();
                let Ok(mut stream) = next else { return };
                std::thread::sleep(delay);
                let body = r#"{"message":"Waited","result":0.2}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let queue = queue.clone();
            std::thread::spawn(move || {
                // The request is queued once its head has been read.
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let _ = queue.send(stream);
            });
        }
    });
    address
}

fn spec(address: SocketAddr, concurrency: usize) -> BurstSpec {
    BurstSpec {
        address,
        path: "/work".to_string(),
        concurrency,
        timeout: Duration::from_secs(10),
        probe: None,
    }
}

fn assert_near(seconds: f64, expected: f64, what: &str) {
    // The lower bound is firm (the sleeps cannot be shorter); the upper one leaves room for a
    // busy machine.
    assert!(
        seconds >= expected * 0.95 && seconds <= expected + 0.25,
        "{what}: {seconds:.3} s, expected about {expected:.3} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_serialises_a_burst() {
    let address = sleeping_server(1, Duration::from_millis(200));
    let outcome = burst::run(&spec(address, 4)).await.unwrap();
    assert_eq!(outcome.ok(), 4, "{:?}", outcome.answers);
    assert_near(outcome.seconds, 0.8, "4 requests of 0.2 s on 1 worker");
    assert_near(outcome.first_seconds(), 0.2, "the first answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_many_workers_as_requests_serve_a_burst_at_once() {
    let address = sleeping_server(4, Duration::from_millis(200));
    let outcome = burst::run(&spec(address, 4)).await.unwrap();
    assert_eq!(outcome.ok(), 4);
    assert_near(outcome.seconds, 0.2, "4 requests of 0.2 s on 4 workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_take_a_burst_in_waves() {
    let address = sleeping_server(2, Duration::from_millis(200));
    let outcome = burst::run(&spec(address, 5)).await.unwrap();
    assert_eq!(outcome.ok(), 5);
    assert_near(
        outcome.seconds,
        0.6,
        "5 requests of 0.2 s on 2 workers (3 waves)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_reads_the_process_and_waits_its_turn() {
    let address = sleeping_server(1, Duration::from_millis(200));
    let mut spec = spec(address, 2);
    spec.probe = Some(Probe {
        after: Duration::from_millis(100),
        path: Some("/resmon".to_string()),
        pid: Some(std::process::id()),
    });
    let outcome = burst::run(&spec).await.unwrap();
    assert_eq!(outcome.ok(), 2);
    let probe = outcome.probe.unwrap();
    assert!(probe.threads.unwrap() >= 1);
    assert!(probe.rss_bytes.unwrap() > 0);
    assert!(matches!(probe.answer, Some(Ok((200, _)))));
    // Queued behind both burst requests on the one worker: it waits about 0.3 s more.
    assert_near(
        probe.answered_after.unwrap(),
        0.3,
        "the probe behind two requests",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_fails_every_request_without_hanging() {
    let address = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let outcome = burst::run(&spec(address, 3)).await.unwrap();
    assert_eq!(outcome.ok(), 0);
    assert_eq!(outcome.answers.len(), 3);
    assert!(outcome.answers.iter().all(|answer| answer.result.is_err()));
}

#[test]
fn a_quick_study_writes_results_report_and_charts() {
    let variant = built_variant();
    let (_out, directory) =
        run_bakeoff(&["concurrency", "--quick", "--debug", "--variants", &variant]);
    let directory = directory.as_path();
    assert!(
        directory
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("-concurrency")
    );
    let results = StudyResults::read(directory).unwrap();
    assert_eq!(results.settings.max_concurrency, 4);
    assert_eq!(results.servers.len(), 1);
    let server = &results.servers[0];
    assert!(
        server.record.skipped.is_none(),
        "{:?}",
        server.record.skipped
    );
    assert!(server.record.effective.as_ref().unwrap().workers >= 1);
    assert!(server.idle.as_ref().unwrap().threads >= 1);
    let calibration = server.calibration.as_ref().unwrap();
    assert_eq!(calibration.samples, 10);
    assert!(calibration.mean_seconds > 0.0 && calibration.iterations >= 1);
    assert_eq!(server.workloads.len(), Workload::all().len());
    for workload in &server.workloads {
        assert_eq!(workload.points.len(), 4, "{}", workload.workload);
        for point in &workload.points {
            let run = &point.runs[0];
            assert_eq!(
                run.ok, point.concurrency,
                "{}: {:?}",
                workload.workload, run
            );
            assert!(run.failures.is_empty());
            assert!(point.median_server_seconds.unwrap() > 0.0);
            // No burst can beat a wait of T (CPU work in a debug build varies too much to say).
            let cpu = workload.workload.is_cpu();
            assert!(
                point.median_seconds >= if cpu { 0.001 } else { 0.099 },
                "{}",
                workload.workload
            );
        }
        let peak = workload.peak.as_ref().unwrap();
        assert!(peak.threads.unwrap() >= 1 && peak.rss_bytes.unwrap() > 0);
        assert!(peak.threads_before.unwrap() >= 1 && peak.rss_before_bytes.unwrap() > 0);
        assert!(peak.resmon.is_some(), "{:?}", peak.resmon_error);
    }
    // A non-blocking wait is served at once whatever the workers.
    let waits = server.workload(Workload::AsyncIobound).unwrap();
    assert!(waits.points[3].median_seconds < 0.1 * 1.2 + 0.1);

    let report = std::fs::read_to_string(directory.join("report.md")).unwrap();
    assert!(report.starts_with("# bakeoff concurrency study"));
    assert!(report.contains("## Calibration") && report.contains(&variant));
    for workload in Workload::all() {
        let chart = format!("burst-{}.svg", workload);
        assert!(report.contains(&chart), "report.md does not show {chart}");
        assert_svg(&directory.join(chart));
    }

    // `bakeoff report` renders the study again from concurrency.json alone, to the same text.
    std::fs::remove_file(directory.join("burst-async-iobound.svg")).unwrap();
    assert_eq!(render_report_again(directory), report);
    assert_svg(&directory.join("burst-async-iobound.svg"));
}
