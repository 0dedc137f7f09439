//! `netboot-configd key …` and `netboot-configd token`: the rxkad files
//! (formats in src/rxkad/files.rs). Every file written here is a secret:
//! created with mode 0600, never replacing an existing file without
//! `--force` (then through a new file renamed over it, so a reader sees
//! the old or the new one, never half of one).

use netboot::cli::common::{self, quote, quote_os, unexpected, Arg, ArgError, Opt, Spec};
use netboot::cli::Exit;
use netboot::rxkad::files::{self, Holder, Token};
use netboot::rxkad::ticket::{fix_parity, is_weak, kvno_ok, ServerKey};
use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Default `--lifetime` of a token: the longest (30 days).
pub const DEFAULT_LIFETIME: u32 = files::MAX_LIFETIME;

pub static KEY_SPEC: Spec = Spec {
    prog: "netboot-configd key",
    synopsis: "new|openafs [OPTIONS]",
    summary: "make rxkad server keys (netboot-configd key new --help, key openafs --help)",
    about: "\
subcommands:
  new      write a new random server key (a kvno) to a key file
  openafs  write OpenAFS's binary KeyFile from a key file

The key file (FILE of --rxkad-keys) is text, mode 0600:
  # comment
  key = 1 f1e2d3c4b5a69788      one line per key version: KVNO (0..255,
  key = 2 0123456789abcdef      not 213) and 8 DES key bytes in hex
Tokens are sealed with one of its keys (the highest kvno by default) and
configd opens them with the key of the token's kvno, so several kvnos
let keys roll: add kvno N+1, mint new tokens, rebuild the initramfs
images, then delete the line of kvno N.
",
    opts: &[],
};

static KEY_NEW_SPEC: Spec = Spec {
    prog: "netboot-configd key new",
    synopsis: "--kvno N --out FILE [--append | --force]",
    summary: "write a new random rxkad server key (DES, odd parity, not weak)",
    about: "\
Without --append, FILE is a new key file holding this one key; an
existing FILE is refused unless --force. With --append the key is added
to the existing key file FILE (a kvno it holds already is refused); the
file is replaced by a new one, mode 0600. Nothing is printed but the
kvno: the key never leaves FILE. The key comes from getrandom(2).

exit codes: 1 FILE exists (without --force/--append), cannot be read or
written, or already has the kvno; 2 bad usage.
",
    opts: &[
        Opt {
            name: "--kvno",
            value: Some("N"),
            help: "key version number, 0..255 except 213 (required)",
        },
        Opt {
            name: "--out",
            value: Some("FILE"),
            help: "the key file to write (required)",
        },
        Opt {
            name: "--append",
            value: None,
            help: "add the key to the existing key file FILE",
        },
        Opt {
            name: "--force",
            value: None,
            help: "replace an existing FILE",
        },
    ],
};

static KEY_OPENAFS_SPEC: Spec = Spec {
    prog: "netboot-configd key openafs",
    synopsis: "--keys FILE --out KEYFILE [--force]",
    summary: "write OpenAFS's binary KeyFile from a netboot key file",
    about: "\
KEYFILE gets OpenAFS's original KeyFile format (src/auth/keys.c): a
big-endian key count, then per key a big-endian kvno and the 8 key
bytes; at most 8 keys. Put it at <config dir>/KeyFile of an OpenAFS
server (vlserver -config DIR) and it opens the tokens of this key file.
Mode 0600; an existing KEYFILE is refused unless --force.

exit codes: 1 a file cannot be read or written, or more than 8 keys;
2 bad usage.
",
    opts: &[
        Opt {
            name: "--keys",
            value: Some("FILE"),
            help: "the netboot key file (required)",
        },
        Opt {
            name: "--out",
            value: Some("KEYFILE"),
            help: "the KeyFile to write (required)",
        },
        Opt {
            name: "--force",
            value: None,
            help: "replace an existing KEYFILE",
        },
    ],
};

pub static TOKEN_SPEC: Spec = Spec {
    prog: "netboot-configd token",
    synopsis: "--keys FILE (--machine MAC | --fleet NAME) --out FILE [--lifetime DUR] [--kvno N] [--start UNIX] [--force]",
    summary: "mint an rxkad token for the agent's config fetch",
    about: "\
The token names netboot.mac-52-54-00-12-34-56 (--machine: configd gives
it only the config of that MAC) or netboot.fleet-NAME (--fleet: any
machine's config, for one image shared by many machines). It holds a
ticket sealed with a key of the key file, and its session key: whoever
has the token file can fetch what it allows, so it is written mode 0600
and belongs in the initramfs only (initramfs/build.sh --config-token
FILE puts it at /etc/netboot/config.token, where the agent looks).

Token file (text, mode 0600): version, service (netboot-config), name,
instance, realm, kvno, start and expiry (Unix seconds), session_key and
ticket (hex). The validity is printed, and kept in a comment in the file.

exit codes: 1 a file cannot be read or written, FILE exists (without
--force), or no key of --kvno; 2 bad usage.
",
    opts: &[
        Opt {
            name: "--keys",
            value: Some("FILE"),
            help: "the server key file (required)",
        },
        Opt {
            name: "--machine",
            value: Some("MAC"),
            help: "a token for this machine only, e.g. 52:54:00:12:34:56",
        },
        Opt {
            name: "--fleet",
            value: Some("NAME"),
            help: "a token for every machine: NAME 1..34 of a-z 0-9 -",
        },
        Opt {
            name: "--out",
            value: Some("FILE"),
            help: "the token file to write (required)",
        },
        Opt {
            name: "--lifetime",
            value: Some("DUR"),
            help: "validity: N seconds, or Ns Nm Nh Nd; 1 s .. 30d (default 30d)",
        },
        Opt {
            name: "--kvno",
            value: Some("N"),
            help: "seal with the key of this kvno (default: the highest)",
        },
        Opt {
            name: "--start",
            value: Some("UNIX"),
            help: "the ticket's start, Unix seconds (default now; for tests of\n\
                   expired tokens)",
        },
        Opt {
            name: "--force",
            value: None,
            help: "replace an existing FILE",
        },
    ],
};

fn fail(prog: &str, msg: impl std::fmt::Display) -> i32 {
    eprintln!("{prog}: {}", common::escape_controls(&msg.to_string()));
    Exit::Failure as i32
}

/// Read and parse a server key file (bounded).
pub fn read_keys(path: &Path) -> Result<Vec<ServerKey>, String> {
    let name = path.to_string_lossy();
    let bytes = netboot::bounded::read_file(path, files::MAX_FILE as u64)
        .map_err(|e| format!("{}: {e}", quote(&name)))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", quote(&name)))?;
    files::parse_key_file(&text, &name).map_err(|e| e.to_string())
}

/// A warning if others than the owner may read `path`.
pub fn mode_warning(path: &Path) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is readable by others than its owner (mode {:04o}); chmod 600 it",
            quote(&path.to_string_lossy()),
            mode & 0o7777
        )
    })
}

/// `n` bytes from getrandom(2), blocking until the CRNG is ready (this is
/// a key, not an identifier).
fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    let mut got = 0;
    while got < N {
        match rustix::rand::getrandom(&mut b[got..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("getrandom: {e}")),
        }
    }
    Ok(b)
}

/// A random DES key: odd parity, not weak.
fn random_des_key() -> Result<[u8; 8], String> {
    loop {
        let k = fix_parity(random::<8>()?);
        if !is_weak(&k) {
            return Ok(k);
        }
    }
}

/// Write a secret file, mode 0600: a new file, or with `force` a new
/// file renamed over the old one.
pub fn write_secret(path: &Path, data: &[u8], force: bool) -> Result<(), String> {
    let shown = quote(&path.to_string_lossy());
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
    };
    let write = |p: &Path| -> std::io::Result<()> {
        let mut f = open(p)?;
        f.write_all(data)?;
        f.sync_all()
    };
    if !force {
        return write(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{shown} exists; give --force to replace it")
            }
            _ => format!("cannot write {shown}: {e}"),
        });
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let done = write(&tmp).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {shown}: {e}"));
    }
    Ok(())
}

fn kvno_arg(v: &std::ffi::OsStr) -> Result<u32, ArgError> {
    let n: u32 = common::number("--kvno", v, 0, files::MAX_KVNO)?;
    if !kvno_ok(n) {
        return Err(format!("--kvno {n}: reserved (OpenAFS reads kvno 213 as Kerberos 5)").into());
    }
    Ok(n)
}

fn path_arg(v: &std::ffi::OsStr) -> PathBuf {
    PathBuf::from(v)
}

/// `netboot-configd key ARGS`.
pub fn key(args: &[OsString]) -> i32 {
    match args.first().and_then(|a| a.to_str()) {
        Some("new") => key_new(args.get(1..).unwrap_or(&[])),
        Some("openafs") => key_openafs(args.get(1..).unwrap_or(&[])),
        Some("-h" | "--help") | None => common::print_stdout(&KEY_SPEC.help()),
        Some(_) => KEY_SPEC.usage_error(format!(
            "unknown subcommand {}",
            quote_os(args.first().map(OsString::as_os_str).unwrap_or_default())
        )),
    }
}

fn key_new(args: &[OsString]) -> i32 {
    let spec = &KEY_NEW_SPEC;
    let (mut kvno, mut out, mut append, mut force) = (None, None, false, false);
    for a in spec.parse(args) {
        let r = match a {
            Ok(Arg::Value("--kvno", v)) => kvno_arg(v).map(|n| kvno = Some(n)),
            Ok(Arg::Value("--out", v)) => {
                out = Some(path_arg(v));
                Ok(())
            }
            Ok(Arg::Flag("--append")) => {
                append = true;
                Ok(())
            }
            Ok(Arg::Flag("--force")) => {
                force = true;
                Ok(())
            }
            Ok(a) => Err(unexpected(a)),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            return spec.exit(e);
        }
    }
    let (Some(kvno), Some(out)) = (kvno, out) else {
        return spec.usage_error("--kvno and --out are required");
    };
    if append && force {
        return spec.usage_error("--append and --force exclude each other");
    }
    let mut keys = if append {
        match read_keys(&out) {
            Ok(k) => k,
            Err(e) => return fail(spec.prog, e),
        }
    } else {
        Vec::new()
    };
    if keys.iter().any(|k| k.kvno == kvno) {
        return fail(
            spec.prog,
            format!(
                "{} already has kvno {kvno}; pick another --kvno",
                quote(&out.to_string_lossy())
            ),
        );
    }
    let key = match random_des_key() {
        Ok(k) => k,
        Err(e) => return fail(spec.prog, e),
    };
    keys.push(ServerKey { kvno, key });
    if let Err(e) = write_secret(
        &out,
        files::encode_key_file(&keys).as_bytes(),
        force || append,
    ) {
        return fail(spec.prog, e);
    }
    let kvnos: Vec<String> = keys.iter().map(|k| k.kvno.to_string()).collect();
    common::print_stdout(&format!(
        "wrote key kvno {kvno} to {} (mode 0600; kvnos now {})\n",
        quote(&out.to_string_lossy()),
        kvnos.join(", ")
    ))
}

fn key_openafs(args: &[OsString]) -> i32 {
    let spec = &KEY_OPENAFS_SPEC;
    let (mut keys, mut out, mut force) = (None, None, false);
    for a in spec.parse(args) {
        match a {
            Ok(Arg::Value("--keys", v)) => keys = Some(path_arg(v)),
            Ok(Arg::Value("--out", v)) => out = Some(path_arg(v)),
            Ok(Arg::Flag("--force")) => force = true,
            Ok(a) => return spec.exit(unexpected(a)),
            Err(e) => return spec.exit(e),
        }
    }
    let (Some(keys), Some(out)) = (keys, out) else {
        return spec.usage_error("--keys and --out are required");
    };
    let parsed = match read_keys(&keys) {
        Ok(k) => k,
        Err(e) => return fail(spec.prog, e),
    };
    let bin = match files::openafs_keyfile(&parsed) {
        Ok(b) => b,
        Err(e) => return fail(spec.prog, e),
    };
    if let Err(e) = write_secret(&out, &bin, force) {
        return fail(spec.prog, e);
    }
    let kvnos: Vec<String> = parsed.iter().map(|k| k.kvno.to_string()).collect();
    common::print_stdout(&format!(
        "wrote OpenAFS KeyFile {} with kvnos {} (mode 0600)\n",
        quote(&out.to_string_lossy()),
        kvnos.join(", ")
    ))
}

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// `netboot-configd token ARGS`.
pub fn token(args: &[OsString]) -> i32 {
    let spec = &TOKEN_SPEC;
    let mut keys = None;
    let mut holder = None;
    let mut out = None;
    let mut lifetime = DEFAULT_LIFETIME;
    let mut kvno = None;
    let mut start = None;
    let mut force = false;
    for a in spec.parse(args) {
        let r: Result<(), ArgError> = match a {
            Ok(Arg::Value("--keys", v)) => {
                keys = Some(path_arg(v));
                Ok(())
            }
            Ok(Arg::Value("--out", v)) => {
                out = Some(path_arg(v));
                Ok(())
            }
            Ok(Arg::Value("--machine", v)) => common::text("--machine", v)
                .map_err(ArgError::from)
                .and_then(|t| {
                    netboot::cmdline::ip::parse_mac(t).ok_or_else(|| {
                        format!(
                            "--machine {}: expected a MAC like 52:54:00:12:34:56",
                            quote(t)
                        )
                        .into()
                    })
                })
                .and_then(|m| set_holder(&mut holder, Holder::Machine(m))),
            Ok(Arg::Value("--fleet", v)) => common::text("--fleet", v)
                .map_err(ArgError::from)
                .and_then(|t| {
                    if files::valid_fleet(t) {
                        Ok(t.to_string())
                    } else {
                        Err(format!("--fleet {}: expected 1..34 of a-z 0-9 -", quote(t)).into())
                    }
                })
                .and_then(|f| set_holder(&mut holder, Holder::Fleet(f))),
            Ok(Arg::Value("--lifetime", v)) => common::text("--lifetime", v)
                .map_err(ArgError::from)
                .and_then(|t| {
                    files::parse_lifetime(t).map_err(|e| ArgError::from(format!("--lifetime {e}")))
                })
                .map(|l| lifetime = l),
            Ok(Arg::Value("--kvno", v)) => kvno_arg(v).map(|n| kvno = Some(n)),
            Ok(Arg::Value("--start", v)) => common::number("--start", v, 0u32, u32::MAX)
                .map_err(ArgError::from)
                .map(|s| start = Some(s)),
            Ok(Arg::Flag("--force")) => {
                force = true;
                Ok(())
            }
            Ok(a) => Err(unexpected(a)),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            return spec.exit(e);
        }
    }
    let (Some(keys), Some(out)) = (keys, out) else {
        return spec.usage_error("--keys and --out are required");
    };
    let Some(holder) = holder else {
        return spec.usage_error("one of --machine MAC or --fleet NAME is required");
    };
    let parsed = match read_keys(&keys) {
        Ok(k) => k,
        Err(e) => return fail(spec.prog, e),
    };
    let key = match kvno {
        Some(n) => parsed.iter().find(|k| k.kvno == n),
        None => files::latest(&parsed),
    };
    let Some(key) = key else {
        return fail(
            spec.prog,
            format!(
                "{} has no key of kvno {}",
                quote(&keys.to_string_lossy()),
                kvno.unwrap_or(0)
            ),
        );
    };
    let session = match random::<8>() {
        Ok(k) => k,
        Err(e) => return fail(spec.prog, e),
    };
    let start = start.unwrap_or_else(now);
    let t = match Token::mint(key, &holder, start, lifetime, session) {
        Ok(t) => t,
        Err(e) => return fail(spec.prog, e),
    };
    if let Err(e) = write_secret(&out, t.encode().as_bytes(), force) {
        return fail(spec.prog, e);
    }
    common::print_stdout(&format!(
        "wrote token {} for {} (kvno {}): valid from {} until {} (expiry {})\n",
        quote(&out.to_string_lossy()),
        t.principal(),
        t.kvno,
        files::utc(t.start),
        files::utc(t.expiry),
        t.expiry
    ))
}

fn set_holder(slot: &mut Option<Holder>, h: Holder) -> Result<(), ArgError> {
    if slot.is_some() {
        return Err("give one of --machine or --fleet, once".into());
    }
    *slot = Some(h);
    Ok(())
}
