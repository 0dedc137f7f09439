//! `netboot report` (not implemented yet).

pub fn run(_args: &[String]) -> i32 {
    super::fail("report", super::Exit::Failure, "not implemented yet")
}
