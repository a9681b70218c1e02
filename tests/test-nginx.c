/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>

#include "codechat-test-client.h"
#include "codechat-test-daemon.h"
#include "codechat-version.h"

/* The nginx site of data/nginx/codechat.conf in front of a real codechatd,
 * with the real `codechat` going through it over wss://.  Each case runs
 * an nginx of its own on a free loopback port: the http {} around the
 * site is written here, the site is the committed file with only its
 * listen lines, its certificate paths and codechatd's port changed.  The
 * CA and the certificate are made as README.md says, with `openssl`.
 * nginx missing skips the program; every run and every wait is bounded. */

#define OPENSSL_TIMEOUT_MS 30000
/* another program may take the free port before nginx binds it */
#define NGINX_START_TRIES 5

/* what the committed file says, and what the test puts instead */
#define SITE_LISTEN	  "listen 443 ssl;"
#define SITE_LISTEN_IPV6  "listen [::]:443 ssl;"
#define SITE_CERT	  "/etc/letsencrypt/live/chat.example.org/fullchain.pem"
#define SITE_KEY	  "/etc/letsencrypt/live/chat.example.org/privkey.pem"
#define SITE_UPSTREAM	  "127.0.0.1:7373"
#define SITE_READ_TIMEOUT "proxy_read_timeout 120s;"

static const gchar *site_path = NULL; /* data/nginx/codechat.conf */
static gchar *nginx_path = NULL;      /* (owned) (nullable) */

/* made once for the whole program, in a temporary directory */
typedef struct {
	gchar *dir;  /* (owned) */
	gchar *ca;   /* (owned) the CA that signed the server's certificate */
	gchar *cert; /* (owned) for 127.0.0.1 */
	gchar *key;  /* (owned) its key */
} Pki;

static Pki pki;

/* what a case changes: codechatd's --keepalive and nginx's
 * proxy_read_timeout, to see the one keep the other from cutting */
typedef struct {
	const gchar *keepalive;	   /* (nullable) seconds, else the default */
	const gchar *read_timeout; /* (nullable) else the site's */
} Options;

typedef struct {
	CodechatTestDaemon *daemon; /* (owned) */
	GSubprocess *nginx;	    /* (owned) */
	gchar *dir;		    /* (owned) nginx's prefix: config, logs, pid, temp */
	guint16 port;		    /* nginx's */
	gchar *uri;		    /* (owned) wss://127.0.0.1:PORT/v1/ws, through nginx */
	gchar *https_base;	    /* (owned) https://127.0.0.1:PORT */
	gboolean nginx_exited;	    /* set by a wait on ->nginx */
} Fixture;

/* a failed assertion aborts before the teardown: take the daemon and
 * nginx along, or they keep the test's stderr open and the harness waits */
static volatile pid_t daemon_pid = 0;
static volatile pid_t nginx_pid = 0;

static void
abort_handler(int signum)
{
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	if (nginx_pid > 0)
		kill(nginx_pid, SIGKILL);
	signal(signum, SIG_DFL);
	raise(signum);
}

static void
die_with_parent(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static pid_t
pid_of(GSubprocess *proc)
{
	const gchar *id = g_subprocess_get_identifier(proc);

	g_assert_nonnull(id);
	return (pid_t)g_ascii_strtoll(id, NULL, 10);
}

/* the PKI ------------------------------------------------------------- */

/* runs openssl with the arguments in the PKI directory; a bounded wait */
static void
openssl(const gchar *first, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *cmdline = NULL;
	const gchar *arg;
	va_list args;

	g_ptr_array_add(argv, (gpointer) "openssl");
	va_start(args, first);
	for (arg = first; arg != NULL; arg = va_arg(args, const gchar *))
		g_ptr_array_add(argv, (gpointer)arg);
	va_end(args);
	g_ptr_array_add(argv, NULL);
	cmdline = g_strjoinv(" ", (gchar **)argv->pdata);
	g_test_message("$ %s", cmdline);

	/* its progress dots and notes go to the test log, not the TAP stream */
	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
	g_subprocess_launcher_set_cwd(launcher, pki.dir);
	proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	g_assert_cmpint(codechat_test_wait_exit(proc, OPENSSL_TIMEOUT_MS), ==, 0);
}

/* a CA and a certificate for 127.0.0.1 signed by it, with the two
 * commands of README.md's "TLS without a proxy" */
static void
pki_init(void)
{
	g_autoptr(GError) error = NULL;

	pki.dir = g_dir_make_tmp("codechat-test-nginx-pki-XXXXXX", &error);
	g_assert_no_error(error);
	openssl("req",
		"-x509",
		"-newkey",
		"ec",
		"-pkeyopt",
		"ec_paramgen_curve:prime256v1",
		"-nodes",
		"-keyout",
		"ca.key",
		"-out",
		"ca.pem",
		"-days",
		"2",
		"-subj",
		"/CN=codechat test CA",
		NULL);
	openssl("req",
		"-x509",
		"-newkey",
		"ec",
		"-pkeyopt",
		"ec_paramgen_curve:prime256v1",
		"-nodes",
		"-CA",
		"ca.pem",
		"-CAkey",
		"ca.key",
		"-keyout",
		"server.key",
		"-out",
		"server.pem",
		"-days",
		"2",
		"-subj",
		"/CN=127.0.0.1",
		"-addext",
		"basicConstraints=CA:FALSE",
		"-addext",
		"subjectAltName=IP:127.0.0.1,DNS:localhost",
		NULL);
	pki.ca = g_build_filename(pki.dir, "ca.pem", NULL);
	pki.cert = g_build_filename(pki.dir, "server.pem", NULL);
	pki.key = g_build_filename(pki.dir, "server.key", NULL);
}

static void
pki_clear(void)
{
	if (pki.dir != NULL)
		codechat_test_rm_rf(pki.dir);
	g_free(pki.dir);
	g_free(pki.ca);
	g_free(pki.cert);
	g_free(pki.key);
}

/* nginx --------------------------------------------------------------- */

/* @text with every @from replaced by @to; the committed file must have
 * @from, or the test would not run what it claims to */
static gchar *
replace_all(const gchar *text, const gchar *from, const gchar *to)
{
	g_auto(GStrv) parts = g_strsplit(text, from, -1);

	if (g_strv_length(parts) < 2)
		g_test_message("“%s” is no longer in %s", from, site_path);
	g_assert_cmpuint(g_strv_length(parts), >=, 2);
	return g_strjoinv(to, parts);
}

/* the committed site, listening on 127.0.0.1:@port with the test's
 * certificate, in front of codechatd on @upstream_port; with another
 * proxy_read_timeout if @options says so */
static gchar *
site_conf(guint16 port, guint16 upstream_port, const Options *options)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *text = NULL;
	g_autofree gchar *listen = g_strdup_printf("listen 127.0.0.1:%u ssl;", port);
	g_autofree gchar *upstream = g_strdup_printf("127.0.0.1:%u", upstream_port);
	g_autofree gchar *step1 = NULL;
	g_autofree gchar *step2 = NULL;
	g_autofree gchar *step3 = NULL;
	g_autofree gchar *step4 = NULL;
	g_autofree gchar *step5 = NULL;

	g_file_get_contents(site_path, &text, NULL, &error);
	g_assert_no_error(error);
	step1 = replace_all(text, SITE_LISTEN, listen);
	/* not every CI container has IPv6, not even on loopback */
	step2 = replace_all(step1, SITE_LISTEN_IPV6, "");
	step3 = replace_all(step2, SITE_CERT, pki.cert);
	step4 = replace_all(step3, SITE_KEY, pki.key);
	step5 = replace_all(step4, SITE_UPSTREAM, upstream);
	if (options != NULL && options->read_timeout != NULL) {
		g_autofree gchar *timeout =
		    g_strdup_printf("proxy_read_timeout %s;", options->read_timeout);
		return replace_all(step5, SITE_READ_TIMEOUT, timeout);
	}
	return g_steal_pointer(&step5);
}

/*
 * What a distribution's nginx.conf is around the site, with every path in
 * @dir.  The single process of master_process off is enough for a test,
 * and is what makes it work alike as root (CI) and as a user: no worker
 * switches to "user nobody", which could not enter @dir (0700), and
 * killing that one process leaves no worker behind on the port.
 */
static gchar *
main_conf(const gchar *dir, const gchar *site)
{
	return g_strdup_printf("# written by test-nginx for %s\n"
			       "master_process off;\n"
			       "pid %s/nginx.pid;\n"
			       "error_log %s/error.log info;\n"
			       "events {\n"
			       "\tworker_connections 64;\n"
			       "}\n"
			       "http {\n"
			       "\taccess_log %s/access.log;\n"
			       "\tclient_body_temp_path %s/client_body;\n"
			       "\tproxy_temp_path %s/proxy;\n"
			       "\tfastcgi_temp_path %s/fastcgi;\n"
			       "\tuwsgi_temp_path %s/uwsgi;\n"
			       "\tscgi_temp_path %s/scgi;\n"
			       "\tinclude %s;\n"
			       "}\n",
			       site_path,
			       dir,
			       dir,
			       dir,
			       dir,
			       dir,
			       dir,
			       dir,
			       dir,
			       site);
}

static gchar *
nginx_file(Fixture *f, const gchar *name)
{
	return g_build_filename(f->dir, name, NULL);
}

/* the contents of one of nginx's files, "" if there is none yet */
static gchar *
nginx_read(Fixture *f, const gchar *name)
{
	g_autofree gchar *path = nginx_file(f, name);
	gchar *text = NULL;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return g_strdup("");
	return text;
}

/* a port nobody listens on right now */
static guint16
free_port(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) sock =
	    g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) any = g_inet_socket_address_new(loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;

	g_assert_no_error(error);
	g_socket_bind(sock, any, FALSE, &error);
	g_assert_no_error(error);
	bound = g_socket_get_local_address(sock, &error);
	g_assert_no_error(error);
	return g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
}

/* nginx writes its pid file once it listens: TRUE when it has ours */
static gboolean
nginx_listens(Fixture *f)
{
	g_autofree gchar *text = nginx_read(f, "nginx.pid");

	return text[0] != '\0' && (pid_t)g_ascii_strtoll(text, NULL, 10) == nginx_pid;
}

/* starts nginx on a free port: FALSE if another program took the port
 * first, and nginx exited for it */
static gboolean
nginx_try_start(Fixture *f, const Options *options)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *site = NULL;
	g_autofree gchar *site_file = nginx_file(f, "codechat.conf");
	g_autofree gchar *conf = NULL;
	g_autofree gchar *conf_file = nginx_file(f, "nginx.conf");
	g_autofree gchar *error_log = nginx_file(f, "error.log");
	g_autofree gchar *prefix = g_strconcat(f->dir, "/", NULL);
	gint64 deadline = g_get_monotonic_time() + WAIT_TIMEOUT_MS * 1000;

	f->port = free_port();
	site = site_conf(f->port, f->daemon->port, options);
	g_file_set_contents(site_file, site, -1, &error);
	g_assert_no_error(error);
	conf = main_conf(f->dir, site_file);
	g_file_set_contents(conf_file, conf, -1, &error);
	g_assert_no_error(error);
	g_unlink(error_log);

	/* -e: the log before the configuration is read, too */
	g_test_message("$ %s -p %s -e %s -c %s -g 'daemon off;'",
		       nginx_path,
		       prefix,
		       error_log,
		       conf_file);
	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
	g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
	f->nginx = g_subprocess_launcher_spawn(launcher,
					       &error,
					       nginx_path,
					       "-p",
					       prefix,
					       "-e",
					       error_log,
					       "-c",
					       conf_file,
					       "-g",
					       "daemon off;",
					       NULL);
	g_assert_no_error(error);
	nginx_pid = pid_of(f->nginx);
	f->nginx_exited = FALSE;
	g_subprocess_wait_async(f->nginx, NULL, codechat_test_wait_cb, &f->nginx_exited);
	while (!f->nginx_exited && !nginx_listens(f)) {
		g_assert_cmpint(g_get_monotonic_time(), <, deadline);
		codechat_test_sleep_ms(10);
	}
	if (f->nginx_exited) {
		g_autofree gchar *log = nginx_read(f, "error.log");

		g_test_message("nginx exited at once:\n%s", log);
		nginx_pid = 0;
		g_clear_object(&f->nginx);
		g_assert_nonnull(strstr(log, "Address already in use"));
		return FALSE;
	}
	return TRUE;
}

static void
nginx_start(Fixture *f, const Options *options)
{
	guint tries = 0;

	while (!nginx_try_start(f, options))
		g_assert_cmpuint(++tries, <, NGINX_START_TRIES);
	f->uri = g_strdup_printf("wss://127.0.0.1:%u/v1/ws", f->port);
	f->https_base = g_strdup_printf("https://127.0.0.1:%u", f->port);
}

/* SIGTERM: nginx exits at once, and cleanly */
static void
nginx_stop(Fixture *f)
{
	g_autofree gchar *log = NULL;

	g_subprocess_send_signal(f->nginx, SIGTERM);
	/* the wait of nginx_try_start(), whose callback must not outlive @f */
	g_assert_true(codechat_test_wait_until(&f->nginx_exited, WAIT_TIMEOUT_MS));
	g_assert_true(g_subprocess_get_if_exited(f->nginx));
	g_assert_cmpint(g_subprocess_get_exit_status(f->nginx), ==, 0);
	nginx_pid = 0;
	log = nginx_read(f, "error.log");
	g_test_message("nginx's error.log:\n%s", log);
	/* nothing went wrong in nginx itself */
	g_assert_null(strstr(log, "[emerg]"));
	g_assert_null(strstr(log, "[alert]"));
	g_assert_null(strstr(log, "[crit]"));
	g_assert_null(strstr(log, "[warn]"));
}

/* the fixture: codechatd, and nginx in front of it ---------------------- */

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	const Options *options = data;
	const gchar *args[] = {"--bus", "none", "--notify", "off", NULL, NULL, NULL};
	g_autoptr(GError) error = NULL;

	g_assert_nonnull(nginx_path);
	if (options != NULL && options->keepalive != NULL) {
		args[4] = "--keepalive";
		args[5] = options->keepalive;
	}
	f->daemon = codechat_test_daemon_start(args);
	daemon_pid = pid_of(f->daemon->proc);
	signal(SIGABRT, abort_handler);
	g_assert_false(f->daemon->tls);

	f->dir = g_dir_make_tmp("codechat-test-nginx-XXXXXX", &error);
	g_assert_no_error(error);
	nginx_start(f, options);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	if (f->nginx != NULL)
		nginx_stop(f);
	g_clear_object(&f->nginx);
	daemon_pid = 0;
	if (f->daemon != NULL && f->daemon->proc != NULL &&
	    g_subprocess_get_identifier(f->daemon->proc) != NULL)
		g_assert_cmpint(codechat_test_daemon_stop(f->daemon), ==, 0);
	g_clear_pointer(&f->daemon, codechat_test_daemon_free);
	if (f->dir != NULL)
		codechat_test_rm_rf(f->dir);
	g_free(f->dir);
	g_free(f->uri);
	g_free(f->https_base);
}

/* the client ------------------------------------------------------------ */

/* codechat --ca-file CA --server wss://…nginx… --nick NICK ARGS… */
#define run_client(f, input, out, err, nick, ...)                                                  \
	codechat_test_client_run(NULL,                                                             \
				 input,                                                            \
				 out,                                                              \
				 err,                                                              \
				 "--ca-file",                                                      \
				 pki.ca,                                                           \
				 "--server",                                                       \
				 (f)->uri,                                                         \
				 "--nick",                                                         \
				 nick,                                                             \
				 __VA_ARGS__,                                                      \
				 NULL)

/* the lines of @text as JSON objects; every line must be one */
static GPtrArray *
parse_json_lines(const gchar *text)
{
	g_autoptr(GPtrArray) objects =
	    g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

	for (guint i = 0; lines[i] != NULL; i++) {
		g_autoptr(JsonParser) parser = json_parser_new();
		g_autoptr(GError) error = NULL;
		JsonNode *root;

		if (lines[i][0] == '\0')
			continue;
		json_parser_load_from_data(parser, lines[i], -1, &error);
		g_assert_no_error(error);
		root = json_parser_get_root(parser);
		g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
		g_ptr_array_add(objects, json_object_ref(json_node_get_object(root)));
	}
	return g_steal_pointer(&objects);
}

/* `codechat --json history --room general` through nginx */
static GPtrArray *
history(Fixture *f)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(
	    run_client(f, NULL, &out, &err, "reader", "--json", "history", "--room", "general"),
	    ==,
	    0);
	return parse_json_lines(out);
}

/* the number of messages of @history with @text, from @from */
static guint
count_messages(GPtrArray *history, const gchar *from, const gchar *text)
{
	guint n = 0;

	for (guint i = 0; i < history->len; i++) {
		JsonObject *msg = g_ptr_array_index(history, i);

		if (g_strcmp0(json_object_get_string_member_with_default(msg, "text", NULL),
			      text) == 0 &&
		    g_strcmp0(json_object_get_string_member_with_default(msg, "from", NULL),
			      from) == 0)
			n++;
	}
	return n;
}

/* waits until nginx's access log has @count lines with @needle: nginx
 * writes a WebSocket's line once the connection closed */
static void
wait_access_log(Fixture *f, const gchar *needle, guint count)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_TIMEOUT_MS * 1000;

	for (;;) {
		g_autofree gchar *log = nginx_read(f, "access.log");
		g_auto(GStrv) parts = g_strsplit(log, needle, -1);

		if (g_strv_length(parts) - 1 >= count)
			return;
		if (g_get_monotonic_time() >= deadline) {
			g_test_message("access.log, without %u times “%s”:\n%s",
				       count,
				       needle,
				       log);
			g_assert_not_reached();
		}
		codechat_test_sleep_ms(POLL_INTERVAL_MS);
	}
}

/* GET @path through nginx from @local_address (any when NULL): the
 * status, the body in @body */
static guint
https_get(Fixture *f, const gchar *local_address, const gchar *path, gchar **body)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GTlsDatabase) database = g_tls_file_database_new(pki.ca, &error);
	g_autoptr(GSocketAddress) local = NULL;
	g_autoptr(SoupSession) session = NULL;
	g_autofree gchar *url = g_strconcat(f->https_base, path, NULL);
	g_autoptr(SoupMessage) msg = soup_message_new(SOUP_METHOD_GET, url);
	g_autoptr(GBytes) bytes = NULL;

	g_assert_no_error(error);
	if (local_address != NULL)
		local = g_inet_socket_address_new_from_string(local_address, 0);
	/* soup's timeout bounds the wait: this blocks */
	session = soup_session_new_with_options("timeout",
						10,
						"tls-database",
						database,
						"local-address",
						local,
						NULL);
	bytes = soup_session_send_and_read(session, msg, NULL, &error);
	g_assert_no_error(error);
	*body = g_strndup(g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
	g_test_message("GET %s from %s: %u\n%.300s",
		       url,
		       local_address != NULL ? local_address : "127.0.0.1",
		       soup_message_get_status(msg),
		       *body);
	return soup_message_get_status(msg);
}

typedef struct {
	gboolean done;
	gchar *line;
	GError *error;
} ReadLine;

static void
read_line_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	ReadLine *r = user_data;

	r->line = g_data_input_stream_read_line_finish_utf8(G_DATA_INPUT_STREAM(source),
							    result,
							    NULL,
							    &r->error);
	r->done = TRUE;
}

/* the next line of @stream, in time */
static gchar *
read_line(GDataInputStream *stream)
{
	g_autoptr(GCancellable) cancellable = g_cancellable_new();
	ReadLine r = {FALSE};

	g_data_input_stream_read_line_async(stream,
					    G_PRIORITY_DEFAULT,
					    cancellable,
					    read_line_cb,
					    &r);
	if (!codechat_test_wait_until(&r.done, WAIT_TIMEOUT_MS)) {
		g_cancellable_cancel(cancellable);
		codechat_test_wait_until(&r.done, WAIT_TIMEOUT_MS);
		g_assert_not_reached(); /* no line in time */
	}
	g_assert_no_error(r.error);
	g_assert_nonnull(r.line); /* not the end of the output */
	return r.line;
}

/* the cases --------------------------------------------------------------- */

#define WS_UPGRADED "\"GET /v1/ws HTTP/1.1\" 101 "

/* send, then history, both through nginx */
static void
test_send_history(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GPtrArray) messages = NULL;
	JsonObject *last;

	g_assert_cmpint(
	    run_client(f, "through nginx\n", &out, &err, "alice", "send", "--room", "general"),
	    ==,
	    0);
	g_assert_cmpstr(out, ==, "");
	messages = history(f);
	g_assert_cmpuint(messages->len, ==, 1);
	last = g_ptr_array_index(messages, 0);
	g_assert_cmpstr(json_object_get_string_member(last, "type"), ==, "message");
	g_assert_cmpstr(json_object_get_string_member(last, "room"), ==, "general");
	g_assert_cmpstr(json_object_get_string_member(last, "from"), ==, "alice");
	g_assert_cmpstr(json_object_get_string_member(last, "text"), ==, "through nginx");

	/* both went through nginx's /v1/ws, upgraded to WebSockets */
	wait_access_log(f, WS_UPGRADED, 2);
}

/* a message from one client reaches another one live, both through
 * nginx, after @idle_ms of silence between them */
static void
watch_and_send(Fixture *f, guint idle_ms)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GSubprocess) watcher = NULL;
	g_autoptr(GDataInputStream) lines = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autofree gchar *line = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	gint64 deadline = g_get_monotonic_time() + WAIT_TIMEOUT_MS * 1000;
	JsonObject *msg;

	launcher = codechat_test_client_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE |
							 G_SUBPROCESS_FLAGS_STDOUT_PIPE,
						     NULL);
	watcher = g_subprocess_launcher_spawn(launcher,
					      &error,
					      codechat_test_client_path(),
					      "--ca-file",
					      pki.ca,
					      "--server",
					      f->uri,
					      "--nick",
					      "bob",
					      "--json",
					      "watch",
					      "--room",
					      "general",
					      NULL);
	g_assert_no_error(error);
	lines = g_data_input_stream_new(g_subprocess_get_stdout_pipe(watcher));

	/* bob is in the room once /metrics, through nginx too, counts a
	 * session there: the only one */
	for (;;) {
		g_autofree gchar *metrics = NULL;

		g_assert_cmpuint(https_get(f, NULL, "/metrics", &metrics), ==, SOUP_STATUS_OK);
		if (strstr(metrics, "\ncodechat_sessions{room=\"general\"} 1\n") != NULL)
			break;
		g_assert_cmpint(g_get_monotonic_time(), <, deadline);
		codechat_test_sleep_ms(POLL_INTERVAL_MS);
	}

	if (idle_ms > 0)
		codechat_test_sleep_ms(idle_ms);
	g_assert_cmpint(run_client(f,
				   NULL,
				   &out,
				   &err,
				   "alice",
				   "send",
				   "--room",
				   "general",
				   "live through nginx"),
			==,
			0);

	line = read_line(lines);
	g_test_message("watch: %s", line);
	json_parser_load_from_data(parser, line, -1, &error);
	g_assert_no_error(error);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)));
	msg = json_node_get_object(json_parser_get_root(parser));
	g_assert_cmpstr(json_object_get_string_member(msg, "type"), ==, "message");
	g_assert_cmpstr(json_object_get_string_member(msg, "room"), ==, "general");
	g_assert_cmpstr(json_object_get_string_member(msg, "from"), ==, "alice");
	g_assert_cmpstr(json_object_get_string_member(msg, "text"), ==, "live through nginx");

	/* SIGTERM: watch closes its WebSocket cleanly and exits with 0 */
	g_subprocess_send_signal(watcher, SIGTERM);
	g_assert_cmpint(codechat_test_wait_exit(watcher, RUN_TIMEOUT_MS), ==, 0);
}

static void
test_watch(Fixture *f, gconstpointer data)
{
	watch_and_send(f, 0);
}

/* codechatd's pings keep an idle WebSocket open through nginx: here with
 * a ping every second and nginx's timeout at three (slack for a slow,
 * sanitized daemon), the watch waits longer than that, and nginx has
 * cut nothing (with --keepalive 0 it logs "upstream timed out", and watch
 * reconnects) */
static const Options keepalive_options = {"1", "3s"};

static void
test_keepalive(Fixture *f, gconstpointer data)
{
	g_autofree gchar *log = NULL;

	watch_and_send(f, 3500);
	log = nginx_read(f, "error.log");
	g_assert_null(strstr(log, "timed out"));
}

/* nginx's certificate is checked like codechatd's own: without the CA the
 * client refuses it (exit status 2), and nothing gets through */
static void
test_untrusted(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *ok_out = NULL;
	g_autofree gchar *ok_err = NULL;
	g_autoptr(GPtrArray) messages = NULL;

	g_assert_cmpint(codechat_test_client_run(NULL,
						 NULL,
						 &out,
						 &err,
						 "--server",
						 f->uri,
						 "--nick",
						 "mallory",
						 "send",
						 "--room",
						 "general",
						 "never delivered",
						 NULL),
			==,
			2);
	g_assert_nonnull(strstr(err, "cannot connect to"));
	g_assert_nonnull(strstr(err, "certificate not trusted"));

	g_assert_cmpint(
	    run_client(f, NULL, &ok_out, &ok_err, "alice", "send", "--room", "general", "trusted"),
	    ==,
	    0);
	messages = history(f);
	g_assert_cmpuint(count_messages(messages, "alice", "trusted"), ==, 1);
	g_assert_cmpuint(count_messages(messages, "mallory", "never delivered"), ==, 0);
	g_assert_cmpuint(messages->len, ==, 1);
}

static void
test_healthz(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) node = NULL;
	g_autofree gchar *body = NULL;
	g_autofree gchar *down = NULL;
	g_autofree gchar *metrics = NULL;
	g_autofree gchar *other = NULL;
	JsonObject *obj;

	g_assert_cmpuint(https_get(f, NULL, "/healthz", &body), ==, SOUP_STATUS_OK);
	node = json_from_string(body, &error);
	g_assert_no_error(error);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(node));
	obj = json_node_get_object(node);
	g_assert_cmpstr(json_object_get_string_member(obj, "status"), ==, "ok");
	g_assert_cmpstr(json_object_get_string_member(obj, "version"), ==, codechat_version());

	/* this machine may scrape /metrics */
	g_assert_cmpuint(https_get(f, NULL, "/metrics", &metrics), ==, SOUP_STATUS_OK);
	g_assert_nonnull(strstr(metrics, "codechat_"));

	/* nothing else of the daemon's is served */
	g_assert_cmpuint(https_get(f, NULL, "/", &other), ==, SOUP_STATUS_NOT_FOUND);

	/* codechatd gone, nginx answers for it */
	g_assert_cmpint(codechat_test_daemon_stop(f->daemon), ==, 0);
	g_assert_cmpuint(https_get(f, NULL, "/healthz", &down), ==, SOUP_STATUS_BAD_GATEWAY);
}

/* /metrics from another address: 403.  Loopback is all of 127.0.0.0/8 on
 * Linux, so 127.0.0.2 stands for another machine */
static void
test_metrics_elsewhere(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) probe = NULL;
	g_autoptr(GSocketAddress) other = g_inet_socket_address_new_from_string("127.0.0.2", 0);
	g_autofree gchar *metrics = NULL;
	g_autofree gchar *health = NULL;

	probe =
	    g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_assert_no_error(error);
	if (!g_socket_bind(probe, other, FALSE, &error)) {
		/* (g_test_skip_printf() is GLib 2.78) */
		g_autofree gchar *why =
		    g_strdup_printf("cannot bind 127.0.0.2: %s", error->message);
		g_test_skip(why);
		return;
	}
	g_socket_close(probe, NULL);

	g_assert_cmpuint(https_get(f, "127.0.0.2", "/metrics", &metrics),
			 ==,
			 SOUP_STATUS_FORBIDDEN);
	g_assert_null(strstr(metrics, "codechat_"));
	/* the refusal is the rule's: /healthz is for everybody */
	g_assert_cmpuint(https_get(f, "127.0.0.2", "/healthz", &health), ==, SOUP_STATUS_OK);
}

static void
test_skip(void)
{
	g_test_skip("nginx is not installed (apt-get install nginx)");
}

int
main(int argc, char **argv)
{
	gint ret;

	g_test_init(&argc, &argv, NULL);
	/* the site file to test, from tests/meson.build */
	g_assert_cmpint(argc, ==, 2);
	site_path = argv[1];

	/* see test-tls.c: LeakSanitizer and glib-networking's threads */
	{
		const gchar *child = g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS");
		if (child != NULL) {
			g_autofree gchar *options =
			    g_strconcat(child, ":intercept_tls_get_addr=0", NULL);
			g_setenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS", options, TRUE);
		}
	}

	/* Debian's is in /usr/sbin, which a user's PATH may not have */
	nginx_path = g_find_program_in_path("nginx");
	if (nginx_path == NULL && g_file_test("/usr/sbin/nginx", G_FILE_TEST_IS_EXECUTABLE))
		nginx_path = g_strdup("/usr/sbin/nginx");
	if (nginx_path == NULL) {
		g_test_add_func("/codechat/nginx/skipped", test_skip);
		return g_test_run();
	}

	/* glib-networking is what GIO does TLS with */
	if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
		g_printerr("GIO has no TLS backend: install glib-networking\n");
		return 1;
	}
	pki_init();

#define ADD(path, func)                                                                            \
	g_test_add("/codechat/nginx/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	ADD("send-history", test_send_history);
	ADD("watch", test_watch);
	g_test_add("/codechat/nginx/keepalive",
		   Fixture,
		   &keepalive_options,
		   fixture_setup,
		   test_keepalive,
		   fixture_teardown);
	ADD("untrusted", test_untrusted);
	ADD("healthz", test_healthz);
	ADD("metrics-elsewhere", test_metrics_elsewhere);
#undef ADD

	ret = g_test_run();
	pki_clear();
	g_free(nginx_path);
	return ret;
}
