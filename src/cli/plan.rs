//! `netboot plan` (not implemented yet).

pub fn run(_args: &[String]) -> i32 {
    super::fail("plan", super::Exit::Failure, "not implemented yet")
}
