//! `cargo run -p jing-formats --example inspect -- PATH [--json]`: what `jing inspect` prints.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: inspect PATH [--json]");
        std::process::exit(2);
    };
    match jing_formats::inspect(std::path::Path::new(path)) {
        Ok(r) if args.iter().any(|a| a == "--json") => {
            println!("{:#}", r.to_json());
        }
        Ok(r) => {
            print!("{r}");
            if !r.is_ok() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
