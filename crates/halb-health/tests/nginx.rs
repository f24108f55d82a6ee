//! The HTTP and HTTPS probes against a real nginx on loopback (skipped when nginx is
//! not installed; CI installs it). nginx runs in the foreground with every
//! path inside a temporary directory and is killed by PID at the end.
#![allow(clippy::unwrap_used)]

use halb_health::probe::http::hex;
use halb_health::probe::run;
use halb_health::{CheckSpec, HttpMethod, HttpSpec, InitialState, ProbeSpec, Timing, TlsSpec};
use md5::{Digest, Md5};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const INDEX: &str = "<html><body>halb backend: OK</body></html>\n";

struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
    tls_addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn start(binary: &Path) -> Nginx {
    let dir = std::env::temp_dir().join(format!("halb-health-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), INDEX).unwrap();
    // Both held until both are chosen, so they differ.
    let (a, b) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let port = a.local_addr().unwrap().port();
    let tls_port = b.local_addr().unwrap().port();
    drop((a, b));
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n    \
         location = /health {{ default_type text/plain; return 200 \"OK\\n\"; }}\n    \
         location = /broken {{ return 503; }}\n  }}\n  \
         server {{\n    listen 127.0.0.1:{tls_port} ssl;\n    ssl_certificate {d}/cert.pem;\n    \
         ssl_certificate_key {d}/key.pem;\n    \
         location = /health {{ default_type text/plain; return 200 \"TLS OK\\n\"; }}\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Nginx {
        child,
        dir,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        tls_addr: SocketAddr::from(([127, 0, 0, 1], tls_port)),
    }
}

fn spec(target: SocketAddr, http: HttpSpec) -> CheckSpec {
    CheckSpec {
        target,
        probe: ProbeSpec::Http(http),
        timing: Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            rise: 1,
            fall: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::ZERO,
            initial: InitialState::Down,
        },
    }
}

#[tokio::test]
async fn http_probe_against_nginx() {
    let Some(binary) = nginx_binary() else {
        // CI installs nginx (.ci/run): there a missing nginx is a failure,
        // never a silent pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is not installed; .ci/run must install nginx-light"
        );
        eprintln!("nginx not installed; SKIPPED (apt-get install nginx-light to run it)");
        return;
    };
    let nginx = start(&binary);
    // Wait until it listens.
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        while tokio::net::TcpStream::connect(nginx.addr).await.is_err()
            || tokio::net::TcpStream::connect(nginx.tls_addr)
                .await
                .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
    assert!(ready.is_ok(), "nginx did not start: {log}");

    let probe = |h: HttpSpec| {
        let addr = if h.tls.is_some() {
            nginx.tls_addr
        } else {
            nginx.addr
        };
        let s = spec(addr, h);
        async move {
            tokio::time::timeout(Duration::from_secs(20), run(&s))
                .await
                .unwrap()
        }
    };

    let mut health = HttpSpec::get("/health");
    health.body_contains = Some("OK".into());
    let o = probe(health.clone()).await;
    assert!(o.ok, "{o:?}");

    let mut index = HttpSpec::get("/index.html");
    index.body_md5 = Some(Md5::digest(INDEX.as_bytes()).into());
    let o = probe(index.clone()).await;
    assert!(o.ok, "{o:?}");
    index.body_md5 = Some([0; 16]);
    let o = probe(index).await;
    assert!(
        !o.ok && o.reason.contains(&hex(&Md5::digest(INDEX.as_bytes()))),
        "{o:?}"
    );

    let mut head = HttpSpec::get("/index.html");
    head.method = HttpMethod::Head;
    head.host = Some("backend.example".into());
    assert!(probe(head).await.ok);

    let o = probe(HttpSpec::get("/missing")).await;
    assert_eq!((o.ok, o.reason.as_str()), (false, "HTTP 404"));
    let o = probe(HttpSpec::get("/broken")).await;
    assert_eq!((o.ok, o.reason.as_str()), (false, "HTTP 503"));
    let mut wrong = health;
    wrong.body_contains = Some("DOWN".into());
    assert!(!probe(wrong).await.ok);

    // HTTPS: self-signed certificate, verified against itself and not.
    let mut https = HttpSpec::get("/health");
    https.body_contains = Some("TLS OK".into());
    https.tls = Some(TlsSpec {
        server_name: Some("localhost".into()),
        verify: true,
        ca_file: Some(nginx.dir.join("cert.pem")),
        client_cert: None,
    });
    let o = probe(https.clone()).await;
    assert!(o.ok, "{o:?}");
    https.tls = Some(TlsSpec::default());
    let o = probe(https.clone()).await;
    assert!(o.ok, "{o:?}");
    https.tls = Some(TlsSpec {
        server_name: Some("localhost".into()),
        verify: true,
        ca_file: None,
        client_cert: None,
    });
    let o = probe(https).await;
    assert!(!o.ok && o.reason.contains("TLS"), "{o:?}");
    drop(nginx);
}
