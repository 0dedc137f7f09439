//! `netboot events` (not implemented yet).

pub fn run(_args: &[String]) -> i32 {
    super::fail("events", super::Exit::Failure, "not implemented yet")
}
