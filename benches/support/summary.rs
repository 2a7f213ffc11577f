//! How the benches print figures: a median (min-max), and the summary that ends a
//! report, each figure against its target.

/// A median (min-max), as the tables print it.
pub fn fmt3(v: (f64, f64, f64)) -> String {
    format!("{:.2} ({:.2}-{:.2})", v.0, v.1, v.2)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

#[derive(Default)]
pub struct Summary {
    rows: Vec<(String, String, String, &'static str)>,
}

impl Summary {
    pub fn add(&mut self, what: &str, figure: String, target: &str, ok: bool) {
        self.rows
            .push((what.to_owned(), figure, target.to_owned(), verdict(ok)));
    }

    pub fn print(&self) {
        println!("\n### Summary against the targets\n");
        println!("| what | figure | target | |");
        println!("|---|---|---|---|");
        for (what, figure, target, v) in &self.rows {
            println!("| {what} | {figure} | {target} | {v} |");
        }
    }
}
