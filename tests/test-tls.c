/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>

#include "codechat-test-client.h"
#include "codechat-test-daemon.h"

/* codechatd with --tls-cert and --tls-key against the real `codechat`:
 * a CA and a server certificate for 127.0.0.1 are made with the openssl
 * command at run time, and a second CA that signed nothing of ours stands
 * for an untrusted one.  Every run and every wait is bounded. */

#define OPENSSL_TIMEOUT_MS 30000

/* the files made once for the whole program, in a temporary directory */
typedef struct {
	gchar *dir;	       /* (owned) */
	gchar *ca;	       /* (owned) the CA that signed the server's certificate */
	gchar *other_ca;       /* (owned) a CA that signed nothing of ours */
	gchar *cert;	       /* (owned) the server's certificate */
	gchar *key;	       /* (owned) its key */
	gchar *elsewhere_cert; /* (owned) one of our CA's, for another host */
	gchar *elsewhere_key;  /* (owned) its key */
	gchar *chain;	       /* (owned) the certificate followed by its CA's */
	gchar *other_key;      /* (owned) a key of another certificate */
	gchar *not_pem;	       /* (owned) a file with neither */
	gchar *unreadable;     /* (owned) a path that does not exist */
} Pki;

static Pki pki;

typedef struct {
	CodechatTestDaemon *daemon; /* (owned) */
} Fixture;

/* a failed assertion aborts before the teardown: take the daemon along,
 * or it keeps the test's stderr open and the harness waits for it */
static volatile pid_t daemon_pid = 0;

static void
abort_handler(int signum)
{
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	signal(signum, SIG_DFL);
	raise(signum);
}

/* runs openssl with @args in the PKI directory; a bounded wait */
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
	gint status;

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
	status = codechat_test_wait_exit(proc, OPENSSL_TIMEOUT_MS);
	g_assert_cmpint(status, ==, 0);
}

static gchar *
pki_path(const gchar *name)
{
	return g_build_filename(pki.dir, name, NULL);
}

/* a CA named @name: NAME.pem and NAME.key */
static void
make_ca(const gchar *name)
{
	g_autofree gchar *key = g_strconcat(name, ".key", NULL);
	g_autofree gchar *pem = g_strconcat(name, ".pem", NULL);
	g_autofree gchar *subject = g_strdup_printf("/CN=codechat test %s", name);

	openssl("req",
		"-x509",
		"-newkey",
		"ec",
		"-pkeyopt",
		"ec_paramgen_curve:prime256v1",
		"-nodes",
		"-keyout",
		key,
		"-out",
		pem,
		"-days",
		"2",
		"-subj",
		subject,
		"-addext",
		"basicConstraints=critical,CA:TRUE",
		"-addext",
		"keyUsage=critical,keyCertSign,cRLSign",
		NULL);
}

/* NAME.pem and NAME.key for the names of @alt_names, signed by @ca */
static void
make_server_cert(const gchar *name, const gchar *ca, const gchar *alt_names)
{
	g_autofree gchar *key = g_strconcat(name, ".key", NULL);
	g_autofree gchar *csr = g_strconcat(name, ".csr", NULL);
	g_autofree gchar *pem = g_strconcat(name, ".pem", NULL);
	g_autofree gchar *ca_pem = g_strconcat(ca, ".pem", NULL);
	g_autofree gchar *ca_key = g_strconcat(ca, ".key", NULL);
	g_autofree gchar *ext_name = g_strconcat(name, ".ext", NULL);
	g_autofree gchar *ext = pki_path(ext_name);
	g_autofree gchar *ext_contents = g_strdup_printf("subjectAltName=%s\n"
							 "basicConstraints=critical,CA:FALSE\n"
							 "keyUsage=critical,digitalSignature\n"
							 "extendedKeyUsage=serverAuth\n",
							 alt_names);
	g_autoptr(GError) error = NULL;

	g_file_set_contents(ext, ext_contents, -1, &error);
	g_assert_no_error(error);
	openssl("req",
		"-newkey",
		"ec",
		"-pkeyopt",
		"ec_paramgen_curve:prime256v1",
		"-nodes",
		"-keyout",
		key,
		"-out",
		csr,
		"-subj",
		"/CN=127.0.0.1",
		NULL);
	openssl("x509",
		"-req",
		"-in",
		csr,
		"-CA",
		ca_pem,
		"-CAkey",
		ca_key,
		"-CAcreateserial",
		"-out",
		pem,
		"-days",
		"2",
		"-extfile",
		ext_name,
		NULL);
}

static void
pki_init(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *cert = NULL;
	g_autofree gchar *ca = NULL;
	g_autofree gchar *chain = NULL;

	pki.dir = g_dir_make_tmp("codechat-test-tls-XXXXXX", &error);
	g_assert_no_error(error);
	make_ca("ca");
	make_ca("other-ca");
	make_server_cert("server", "ca", "IP:127.0.0.1,DNS:localhost");
	make_server_cert("other-server", "other-ca", "IP:127.0.0.1,DNS:localhost");
	make_server_cert("elsewhere", "ca", "DNS:chat.example.invalid");
	pki.ca = pki_path("ca.pem");
	pki.other_ca = pki_path("other-ca.pem");
	pki.cert = pki_path("server.pem");
	pki.key = pki_path("server.key");
	pki.elsewhere_cert = pki_path("elsewhere.pem");
	pki.elsewhere_key = pki_path("elsewhere.key");
	pki.other_key = pki_path("other-server.key");
	pki.not_pem = pki_path("server.ext");
	pki.unreadable = pki_path("no-such-file.pem");

	/* a certificate may come with its chain in the same file */
	g_file_get_contents(pki.cert, &cert, NULL, &error);
	g_assert_no_error(error);
	g_file_get_contents(pki.ca, &ca, NULL, &error);
	g_assert_no_error(error);
	chain = g_strconcat(cert, ca, NULL);
	pki.chain = pki_path("chain.pem");
	g_file_set_contents(pki.chain, chain, -1, &error);
	g_assert_no_error(error);
}

static void
pki_clear(void)
{
	if (pki.dir != NULL)
		codechat_test_rm_rf(pki.dir);
	g_free(pki.dir);
	g_free(pki.ca);
	g_free(pki.other_ca);
	g_free(pki.cert);
	g_free(pki.key);
	g_free(pki.elsewhere_cert);
	g_free(pki.elsewhere_key);
	g_free(pki.chain);
	g_free(pki.other_key);
	g_free(pki.not_pem);
	g_free(pki.unreadable);
}

static void
fixture_start(Fixture *f, const gchar *const *args)
{
	const gchar *pid;

	f->daemon = codechat_test_daemon_start(args);
	pid = g_subprocess_get_identifier(f->daemon->proc);
	g_assert_nonnull(pid);
	daemon_pid = (pid_t)g_ascii_strtoll(pid, NULL, 10);
	signal(SIGABRT, abort_handler);
}

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	const gchar *const args[] = {"--tls-cert", pki.cert, "--tls-key", pki.key, NULL};

	fixture_start(f, args);
	g_assert_true(f->daemon->tls);
	g_assert_true(g_str_has_prefix(f->daemon->uri, "wss://127.0.0.1:"));
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	daemon_pid = 0;
	if (f->daemon != NULL)
		g_assert_cmpint(codechat_test_daemon_stop(f->daemon), ==, 0);
	g_clear_pointer(&f->daemon, codechat_test_daemon_free);
}

/* codechat --server URI ARGS… with --ca-file @ca_file unless NULL */
static gint
run_client(const gchar *uri,
	   const gchar *ca_file,
	   const gchar *const *env,
	   gchar **out,
	   gchar **err,
	   const gchar *command,
	   const gchar *arg)
{
	if (ca_file != NULL)
		return codechat_test_client_run(env,
						NULL,
						out,
						err,
						"--server",
						uri,
						"--ca-file",
						ca_file,
						"--nick",
						"alice",
						command,
						arg,
						NULL);
	return codechat_test_client_run(env,
					NULL,
					out,
					err,
					"--server",
					uri,
					"--nick",
					"alice",
					command,
					arg,
					NULL);
}

/* sends @text, and returns the history, which must have it */
static gchar *
assert_send_and_history(Fixture *f, const gchar *ca_file, const gchar *text)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *history = NULL;
	g_autofree gchar *history_err = NULL;

	g_assert_cmpint(run_client(f->daemon->uri, ca_file, NULL, &out, &err, "send", text), ==, 0);
	g_assert_cmpint(
	    run_client(f->daemon->uri, ca_file, NULL, &history, &history_err, "history", NULL),
	    ==,
	    0);
	g_assert_nonnull(strstr(history, text));
	return g_steal_pointer(&history);
}

/* GET https://…/healthz with the CAs of @ca_file; the status, 0 when the
 * request failed, and its error */
static guint
https_get_healthz(Fixture *f, const gchar *ca_file, gchar **body, GError **error)
{
	g_autoptr(SoupSession) session = soup_session_new_with_options("timeout", 10, NULL);
	g_autofree gchar *url = g_strdup_printf("%s/healthz", f->daemon->http_base);
	g_autoptr(SoupMessage) msg = soup_message_new(SOUP_METHOD_GET, url);
	g_autoptr(GBytes) bytes = NULL;

	if (ca_file != NULL) {
		g_autoptr(GTlsDatabase) database = g_tls_file_database_new(ca_file, error);
		g_assert_nonnull(database);
		soup_session_set_tls_database(session, database);
	}
	/* soup's timeout bounds the wait: this may block */
	bytes = soup_session_send_and_read(session, msg, NULL, error);
	if (bytes == NULL)
		return 0;
	*body = g_strndup(g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
	return soup_message_get_status(msg);
}

/* ------------------------------------------------------------------ */

static void
test_trusted(Fixture *f, gconstpointer data)
{
	g_autofree gchar *env_ca = g_strconcat("CODECHAT_CA_FILE=", pki.ca, NULL);
	const gchar *const env[] = {env_ca, NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_free(assert_send_and_history(f, pki.ca, "hello over TLS"));

	/* CODECHAT_CA_FILE does what --ca-file does */
	g_assert_cmpint(run_client(f->daemon->uri, NULL, env, &out, &err, "history", NULL), ==, 0);
	g_assert_nonnull(strstr(out, "hello over TLS"));

	/* localhost is in the certificate too */
	{
		g_autofree gchar *localhost =
		    g_strdup_printf("wss://localhost:%u/v1/ws", f->daemon->port);
		g_autofree gchar *out2 = NULL;
		g_autofree gchar *err2 = NULL;

		g_assert_cmpint(
		    run_client(localhost, pki.ca, NULL, &out2, &err2, "send", "by name"),
		    ==,
		    0);
	}
}

/* without --ca-file the system's CAs decide, and they never signed ours */
static void
test_system_store(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_autofree gchar *history = NULL;

	g_assert_cmpint(
	    run_client(f->daemon->uri, NULL, NULL, &out, &err, "send", "never delivered"),
	    ==,
	    2);
	g_assert_nonnull(strstr(err, "cannot connect to"));
	g_assert_nonnull(strstr(err, "certificate not trusted"));
	g_assert_nonnull(strstr(err, "certificate authority"));
	/* nothing got through */
	history = assert_send_and_history(f, pki.ca, "after the refusal");
	g_assert_null(strstr(history, "never delivered"));
}

static void
test_untrusted_ca(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run_client(f->daemon->uri, pki.other_ca, NULL, &out, &err, "send", "no"),
			==,
			2);
	g_assert_nonnull(strstr(err, "certificate not trusted"));
	/* the daemon keeps serving */
	g_free(assert_send_and_history(f, pki.ca, "still serving"));
}

/* a ws:// client on the TLS port gets nowhere, and harms nothing */
static void
test_plain_client(Fixture *f, gconstpointer data)
{
	g_autofree gchar *plain = g_strdup_printf("ws://127.0.0.1:%u/v1/ws", f->daemon->port);
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run_client(plain, NULL, NULL, &out, &err, "send", "plain"), ==, 2);
	g_assert_nonnull(strstr(err, "cannot connect to"));
	g_free(assert_send_and_history(f, pki.ca, "after a plain client"));
}

static void
test_healthz(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) node = NULL;
	g_autofree gchar *body = NULL;
	g_autofree gchar *untrusted_body = NULL;
	JsonObject *obj;

	g_assert_true(g_str_has_prefix(f->daemon->http_base, "https://"));
	g_assert_cmpuint(https_get_healthz(f, pki.ca, &body, &error), ==, SOUP_STATUS_OK);
	g_assert_no_error(error);
	node = json_from_string(body, &error);
	g_assert_no_error(error);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(node));
	obj = json_node_get_object(node);
	g_assert_cmpstr(json_object_get_string_member(obj, "status"), ==, "ok");

	/* with another CA the check fails */
	g_assert_cmpuint(https_get_healthz(f, pki.other_ca, &untrusted_body, &error), ==, 0);
	g_assert_error(error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);
}

/* a certificate of the right CA for another host name */
static void
test_wrong_host(Fixture *f, gconstpointer data)
{
	const gchar *const args[] = {"--tls-cert",
				     pki.elsewhere_cert,
				     "--tls-key",
				     pki.elsewhere_key,
				     NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	fixture_start(f, args);
	g_assert_cmpint(run_client(f->daemon->uri, pki.ca, NULL, &out, &err, "send", "no"), ==, 2);
	g_assert_nonnull(strstr(err, "certificate not trusted"));
	g_assert_nonnull(strstr(err, "not for this host name"));
}

/* the certificate file may hold the chain; the config file sets TLS too */
static void
test_chain_and_config(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *conf = pki_path("codechatd.conf");
	g_autofree gchar *contents =
	    g_strdup_printf("[daemon]\ntls-cert=%s\ntls-key=%s\n", pki.chain, pki.key);
	const gchar *const args[] = {"--config", conf, NULL};

	g_file_set_contents(conf, contents, -1, &error);
	g_assert_no_error(error);
	fixture_start(f, args);
	g_assert_true(f->daemon->tls);
	g_free(assert_send_and_history(f, pki.ca, "from a chain"));
}

/* codechat with a CA file that is not one: a usage error naming it */
static void
test_bad_ca_file(Fixture *f, gconstpointer data)
{
	const gchar *files[] = {pki.unreadable, pki.not_pem};

	for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;

		g_assert_cmpint(run_client(f->daemon->uri, files[i], NULL, &out, &err, "send", "x"),
				==,
				1);
		g_assert_nonnull(strstr(err, files[i]));
		g_assert_nonnull(strstr(err, "CA file"));
	}
}

typedef struct {
	gboolean done;
	gchar *out;
	gchar *err;
	GError *error;
} Communicate;

static void
communicate_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	Communicate *c = user_data;

	g_subprocess_communicate_utf8_finish(G_SUBPROCESS(source),
					     result,
					     &c->out,
					     &c->err,
					     &c->error);
	c->done = TRUE;
}

/* codechatd ARGS… that must fail: its exit status, stderr in @err */
static gint
run_bad_daemon(const gchar *const *env, gchar **err, const gchar *const *args)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp("codechat-test-XXXXXX", &error);
	g_autofree gchar *cmdline = NULL;
	Communicate c = {FALSE};
	gint status;

	g_assert_no_error(error);
	g_ptr_array_add(argv, (gpointer)codechat_test_daemon_path());
	g_ptr_array_add(argv, (gpointer) "--listen");
	g_ptr_array_add(argv, (gpointer) "127.0.0.1:0");
	g_ptr_array_add(argv, (gpointer) "--data-dir");
	g_ptr_array_add(argv, dir);
	for (guint i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)args[i]);
	g_ptr_array_add(argv, NULL);
	cmdline = g_strjoinv(" ", (gchar **)argv->pdata);
	g_test_message("$ %s", cmdline);

	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE |
					     G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_subprocess_launcher_setenv(launcher, "XDG_CONFIG_HOME", dir, TRUE);
	g_subprocess_launcher_unsetenv(launcher, "CODECHATD_TLS_CERT");
	g_subprocess_launcher_unsetenv(launcher, "CODECHATD_TLS_KEY");
	if (g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS") != NULL)
		g_subprocess_launcher_setenv(launcher,
					     "ASAN_OPTIONS",
					     g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS"),
					     TRUE);
	for (guint i = 0; env != NULL && env[i] != NULL; i++) {
		g_auto(GStrv) pair = g_strsplit(env[i], "=", 2);
		g_subprocess_launcher_setenv(launcher, pair[0], pair[1], TRUE);
	}
	proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	g_subprocess_communicate_utf8_async(proc, NULL, NULL, communicate_cb, &c);
	if (!codechat_test_wait_until(&c.done, WAIT_TIMEOUT_MS)) {
		/* it listens: the options were taken */
		g_subprocess_force_exit(proc);
		codechat_test_wait_until(&c.done, WAIT_TIMEOUT_MS);
		codechat_test_rm_rf(dir);
		g_assert_not_reached();
	}
	g_assert_no_error(c.error);
	status = codechat_test_wait_exit(proc, WAIT_TIMEOUT_MS);
	codechat_test_rm_rf(dir);
	g_test_message("exit status %d\nstdout: %s\nstderr: %s", status, c.out, c.err);
	/* nothing listened */
	g_assert_null(strstr(c.out, "listening"));
	g_free(c.out);
	*err = c.err;
	return status;
}

static void
assert_bad_daemon(const gchar *const *env, const gchar *const *args, const gchar *expected)
{
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run_bad_daemon(env, &err, args), !=, 0);
	g_assert_nonnull(strstr(err, "codechatd: "));
	if (strstr(err, expected) == NULL)
		g_test_message("expected “%s” in the message", expected);
	g_assert_nonnull(strstr(err, expected));
}

static void
test_bad_daemon_options(void)
{
	g_autofree gchar *env_cert = g_strconcat("CODECHATD_TLS_CERT=", pki.cert, NULL);
	const gchar *const env[] = {env_cert, NULL};
	const gchar *const no_key[] = {"--tls-cert", pki.cert, NULL};
	const gchar *const no_cert[] = {"--tls-key", pki.key, NULL};
	const gchar *const none[] = {NULL};
	const gchar *const missing_cert[] = {"--tls-cert",
					     pki.unreadable,
					     "--tls-key",
					     pki.key,
					     NULL};
	const gchar *const missing_key[] = {"--tls-cert",
					    pki.cert,
					    "--tls-key",
					    pki.unreadable,
					    NULL};
	const gchar *const not_a_cert[] = {"--tls-cert", pki.key, "--tls-key", pki.key, NULL};
	const gchar *const not_a_key[] = {"--tls-cert", pki.cert, "--tls-key", pki.ca, NULL};
	const gchar *const mismatch[] = {"--tls-cert", pki.cert, "--tls-key", pki.other_key, NULL};

	assert_bad_daemon(NULL, no_key, "--tls-key");
	assert_bad_daemon(NULL, no_cert, "--tls-cert");
	/* the environment is a layer like the others */
	assert_bad_daemon(env, none, "--tls-key");
	assert_bad_daemon(NULL, missing_cert, pki.unreadable);
	assert_bad_daemon(NULL, missing_key, pki.unreadable);
	assert_bad_daemon(NULL, not_a_cert, pki.key);
	assert_bad_daemon(NULL, not_a_key, pki.ca);
	assert_bad_daemon(NULL, mismatch, "does not match");
	assert_bad_daemon(NULL, mismatch, pki.other_key);
}

/* the options are in both programs' --help */
static void
test_help(void)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	Communicate c = {FALSE};
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;

	proc = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
				&error,
				codechat_test_daemon_path(),
				"--help",
				NULL);
	g_assert_no_error(error);
	g_subprocess_communicate_utf8_async(proc, NULL, NULL, communicate_cb, &c);
	g_assert_true(codechat_test_wait_until(&c.done, WAIT_TIMEOUT_MS));
	g_assert_no_error(c.error);
	g_assert_cmpint(codechat_test_wait_exit(proc, WAIT_TIMEOUT_MS), ==, 0);
	g_assert_nonnull(strstr(c.out, "--tls-cert=FILE"));
	g_assert_nonnull(strstr(c.out, "--tls-key=FILE"));
	g_free(c.out);
	g_free(c.err);

	g_assert_cmpint(codechat_test_run(&out, &err, "--help"), ==, 0);
	g_assert_nonnull(strstr(out, "--ca-file=FILE"));
	g_assert_nonnull(strstr(out, "CODECHAT_CA_FILE"));
}

int
main(int argc, char **argv)
{
	gint ret;

	g_test_init(&argc, &argv, NULL);

	/* once glib-networking is loaded, LeakSanitizer (clang 14) crashes in
	 * its stop-the-world on a bogus dynamic TLS range of one of GIO's
	 * worker threads ("DTLS 8 at 0x2000…", then "Tracer caught signal
	 * 11"), at the exit of every program that did a handshake: without
	 * tracking those ranges the leak check of the daemon and the client
	 * runs, and passes */
	{
		const gchar *child = g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS");
		if (child != NULL) {
			g_autofree gchar *options =
			    g_strconcat(child, ":intercept_tls_get_addr=0", NULL);
			g_setenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS", options, TRUE);
		}
	}

	/* glib-networking is what GIO does TLS with */
	if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
		g_test_message("GIO has no TLS backend: install glib-networking");
		g_printerr("GIO has no TLS backend: install glib-networking\n");
		return 1;
	}
	pki_init();

#define ADD(path, func)                                                                            \
	g_test_add("/codechat/tls/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	ADD("trusted", test_trusted);
	ADD("system-store", test_system_store);
	ADD("untrusted-ca", test_untrusted_ca);
	ADD("plain-client", test_plain_client);
	ADD("healthz", test_healthz);
	ADD("bad-ca-file", test_bad_ca_file);
#undef ADD
	g_test_add("/codechat/tls/chain-and-config",
		   Fixture,
		   NULL,
		   NULL,
		   test_chain_and_config,
		   fixture_teardown);
	g_test_add("/codechat/tls/wrong-host",
		   Fixture,
		   NULL,
		   NULL,
		   test_wrong_host,
		   fixture_teardown);
	g_test_add_func("/codechat/tls/bad-daemon-options", test_bad_daemon_options);
	g_test_add_func("/codechat/tls/help", test_help);

	ret = g_test_run();
	pki_clear();
	return ret;
}
