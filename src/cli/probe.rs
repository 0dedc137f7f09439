//! `netboot probe` (not implemented yet).

pub fn run(_args: &[String]) -> i32 {
    super::fail("probe", super::Exit::Failure, "not implemented yet")
}
