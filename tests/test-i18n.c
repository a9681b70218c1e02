/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <gio/gio.h>
#include <locale.h>
#include <string.h>

#include "codechat-test-daemon.h"

/* The real programs under the German locale, reading the catalogues of
 * the build tree (CODECHAT_LOCALEDIR, set by tests/meson.build).
 *
 * No de_DE locale need exist: glibc takes the language of messages from
 * LANGUAGE whenever the locale is not exactly "C", and C.UTF-8 is built
 * into glibc.  So the children run with LC_ALL=C.UTF-8 LANGUAGE=de. */

/* runs @argv with @language as LANGUAGE ("" for none); returns the
 * exit status */
static gint
run(const gchar *language, const gchar *const *argv, gchar **out, gchar **err)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *cmdline = g_strjoinv(" ", (gchar **)argv);
	const gchar *child_asan = g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS");

	g_test_message("$ LANGUAGE=%s %s", language, cmdline);
	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE |
					     G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_subprocess_launcher_setenv(launcher, "LC_ALL", "C.UTF-8", TRUE);
	g_subprocess_launcher_setenv(launcher, "LANGUAGE", language, TRUE);
	g_subprocess_launcher_unsetenv(launcher, "LANG");
	g_subprocess_launcher_unsetenv(launcher, "LC_MESSAGES");
	g_subprocess_launcher_unsetenv(launcher, "G_MESSAGES_DEBUG");
	/* leaks are checked in the programs, not in the tests (see meson.build) */
	if (child_asan != NULL)
		g_subprocess_launcher_setenv(launcher, "ASAN_OPTIONS", child_asan, TRUE);
	proc = g_subprocess_launcher_spawnv(launcher, argv, &error);
	g_assert_no_error(error);
	g_subprocess_communicate_utf8(proc, NULL, NULL, out, err, &error);
	g_assert_no_error(error);
	g_assert_true(g_subprocess_get_if_exited(proc));
	g_test_message("exit status %d\nstdout: %s\nstderr: %s",
		       g_subprocess_get_exit_status(proc),
		       *out,
		       *err);
	return g_subprocess_get_exit_status(proc);
}

/* says which text is missing before failing, the output is in the log */
static void
assert_has(const gchar *text, const gchar *needle)
{
	if (strstr(text, needle) == NULL)
		g_test_message("expected “%s”", needle);
	g_assert_nonnull(strstr(text, needle));
}

static void
assert_lacks(const gchar *text, const gchar *needle)
{
	if (strstr(text, needle) != NULL)
		g_test_message("did not expect “%s”", needle);
	g_assert_null(strstr(text, needle));
}

static void
check_catalogue(void)
{
	const gchar *localedir = g_getenv("CODECHAT_LOCALEDIR");
	g_autofree gchar *mo = NULL;

	g_assert_nonnull(localedir); /* set by tests/meson.build */
	mo = g_build_filename(localedir, "de", "LC_MESSAGES", GETTEXT_PACKAGE ".mo", NULL);
	if (!g_file_test(mo, G_FILE_TEST_EXISTS))
		g_test_message("%s is missing: the German texts cannot appear", mo);
}

static void
test_client_help(void)
{
	const gchar *argv[] = {codechat_test_client_path(), "--help", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	check_catalogue();
	g_assert_cmpint(run("de", argv, &out, &err), ==, 0);
	/* the summary of the commands and an option's description */
	assert_has(out, "Befehle:");
	assert_has(out, "Nachrichten bei ihrem Eintreffen ausgeben");
	assert_has(out, "Server-URL (ws:// oder wss://)");
	/* a metavar: GOptionContext translates those too */
	assert_has(out, "--color=WANN");
	assert_lacks(out, "Commands:");
}

static void
test_send_help(void)
{
	const gchar *argv[] = {codechat_test_client_path(), "send", "--help", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	check_catalogue();
	g_assert_cmpint(run("de", argv, &out, &err), ==, 0);
	assert_has(out, "Eine Nachricht an einen Raum oder an einen Spitznamen senden");
	assert_has(out, "--to=SPITZNAME");
	assert_has(out, "Stattdessen eine Direktnachricht an SPITZNAME senden");
	assert_has(out, "auch hier möglich; siehe „codechat --help“.");
	assert_lacks(out, "Send a direct message");
}

static void
test_daemon_help(void)
{
	const gchar *argv[] = {codechat_test_daemon_path(), "--help", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	check_catalogue();
	g_assert_cmpint(run("de", argv, &out, &err), ==, 0);
	assert_has(out, "Der codechat-Daemon");
	assert_has(out, "--listen=ADRESSE:PORT");
	/* filled in at run time, from a translated format */
	assert_has(out, "Adresse, auf der gelauscht wird (Vorgabe " DEFAULT_LISTEN ")");
	assert_lacks(out, "Address to listen on");
}

/* a command's description, from the settings it explains */
static void
test_config_help(void)
{
	const gchar *argv[] = {codechat_test_client_path(), "config", "--help", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	check_catalogue();
	g_assert_cmpint(run("de", argv, &out, &err), ==, 0);
	assert_has(out, "Werte werden vor dem Speichern geprüft.");
	assert_lacks(out, "Values are checked before they are saved.");
}

/* an error message, on stderr, with German quotes */
static void
test_client_error(void)
{
	const gchar *argv[] = {codechat_test_client_path(), "frobnicate", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	check_catalogue();
	g_assert_cmpint(run("de", argv, &out, &err), ==, 1);
	assert_has(err, "unbekannter Befehl „frobnicate“");
	assert_has(err, "„codechat --help“ liefert weitere Informationen.");
}

/* without LANGUAGE, C.UTF-8 stays English: the other tests rely on it */
static void
test_english(void)
{
	const gchar *argv[] = {codechat_test_client_path(), "--help", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run("", argv, &out, &err), ==, 0);
	assert_has(out, "Commands:");
	assert_lacks(out, "Befehle:");
}

int
main(int argc, char **argv)
{
	/* the log shows the children's UTF-8 as it is */
	setlocale(LC_ALL, "");
	g_test_init(&argc, &argv, NULL);

	g_test_add_func("/codechat/i18n/client-help", test_client_help);
	g_test_add_func("/codechat/i18n/send-help", test_send_help);
	g_test_add_func("/codechat/i18n/daemon-help", test_daemon_help);
	g_test_add_func("/codechat/i18n/config-help", test_config_help);
	g_test_add_func("/codechat/i18n/client-error", test_client_error);
	g_test_add_func("/codechat/i18n/english", test_english);
	return g_test_run();
}
