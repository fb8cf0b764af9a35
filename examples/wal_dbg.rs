use failover_verify::lsn::{Lsn, TimelineId};
use failover_verify::wal::source::WalDir;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let dir = WalDir::open(&a[1], TimelineId(1)).unwrap();
    let start: Lsn = a[2].parse().unwrap();
    let mut it = dir.read(start, None);
    let mut n = 0;
    for r in it.by_ref() {
        match r {
            Ok(r) => {
                n += 1;
                if n < 5 {
                    println!("{} {} {}", r.lsn, r.rmid, r.xl_tot_len);
                }
            }
            Err(e) => {
                println!("ERR {e}");
                break;
            }
        }
    }
    println!("{n} records; {:?}", it.end_of_wal());
}
