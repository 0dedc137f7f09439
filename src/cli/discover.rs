//! `netboot discover` (not implemented yet).

pub fn run(_args: &[String]) -> i32 {
    super::fail("discover", super::Exit::Failure, "not implemented yet")
}
