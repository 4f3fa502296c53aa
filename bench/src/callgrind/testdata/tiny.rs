use std::io::Write;

#[inline(never)]
fn measured(n: u64) -> u64 {
    let squares: Vec<u64> = (0..n).map(|i| i * i).collect();
    let total: u64 = squares.iter().sum();
    let text = format!("{total}\n");
    std::io::stdout().lock().write_all(text.as_bytes()).unwrap();
    total
}

fn main() {
    let n = std::env::args().count() as u64 * 100;
    std::process::exit((measured(n) % 2) as i32);
}
