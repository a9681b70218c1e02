/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <termios.h>
#include <unistd.h>

#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"

/* `codechat chat` as a person uses it: the real binary in a
 * pseudo-terminal, against a real codechatd, with a second participant
 * (bob, a WebSocket client) on the other side.  What the person sees is
 * the pty's output run through a small terminal interpreter (enough of
 * VT100 for readline: cursor moves, erasing); what bob gets is read from
 * his connection.  Every wait has a deadline; nothing is asserted by
 * sleeping. */

#define WAIT_MS	   15000
#define TERM_COLS  200
#define TERM_ROWS  50
#define PROMPT_GEN "[#general] "

/* a failed assertion aborts before the teardown: take the daemon along */
static volatile pid_t daemon_pid = 0;
static volatile pid_t client_pid = 0;

static void
abort_handler(int signum)
{
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	if (client_pid > 0)
		kill(client_pid, SIGKILL);
	signal(signum, SIG_DFL);
	raise(signum);
}

static void
track_daemon(CodechatTestDaemon *daemon)
{
	const gchar *pid = g_subprocess_get_identifier(daemon->proc);

	g_assert_nonnull(pid);
	daemon_pid = (pid_t)g_ascii_strtoll(pid, NULL, 10);
	signal(SIGABRT, abort_handler);
}

/* main loop helpers */

static gboolean
flag_cb(gpointer user_data)
{
	*(gboolean *)user_data = TRUE;
	return G_SOURCE_REMOVE;
}

/* the screen: a VT100 subset, lines without a height limit (what scrolls
 * off the top stays, as in a scrollback) */

typedef struct {
	GPtrArray *lines; /* (element-type GArray<gunichar>) */
	guint row;
	guint col;
	/* the parser */
	gint state; /* 0 text, 1 ESC, 2 CSI, 3 OSC, 4 skip one (charset) */
	GString *params;
	GByteArray *partial; /* an incomplete UTF-8 sequence */
} Screen;

static Screen *
screen_new(void)
{
	Screen *s = g_new0(Screen, 1);

	s->lines = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
	s->params = g_string_new(NULL);
	s->partial = g_byte_array_new();
	return s;
}

static void
screen_free(Screen *s)
{
	g_ptr_array_unref(s->lines);
	g_string_free(s->params, TRUE);
	g_byte_array_unref(s->partial);
	g_free(s);
}

static GArray *
screen_line(Screen *s, guint row)
{
	while (s->lines->len <= row)
		g_ptr_array_add(s->lines, g_array_new(FALSE, TRUE, sizeof(gunichar)));
	return g_ptr_array_index(s->lines, row);
}

static void
screen_put(Screen *s, gunichar c)
{
	GArray *line = screen_line(s, s->row);
	gunichar space = ' ';

	while (line->len < s->col)
		g_array_append_val(line, space);
	if (s->col < line->len)
		g_array_index(line, gunichar, s->col) = c;
	else
		g_array_append_val(line, c);
	s->col++;
}

static guint
param(gchar **params, guint i, guint def)
{
	guint64 v;

	if (params == NULL || g_strv_length(params) <= i || params[i][0] == '\0' ||
	    !g_ascii_string_to_unsigned(params[i], 10, 0, G_MAXUINT, &v, NULL) || v == 0)
		return def;
	return (guint)v;
}

static void
screen_csi(Screen *s, gchar final)
{
	const gchar *p = s->params->str;
	g_auto(GStrv) params = NULL;
	GArray *line;
	guint n;

	if (p[0] == '?' || p[0] == '>')
		return; /* modes: bracketed paste, keypad… */
	params = g_strsplit(p, ";", -1);
	n = param(params, 0, 1);
	line = screen_line(s, s->row);
	switch (final) {
	case 'A':
		s->row = s->row > n ? s->row - n : 0;
		break;
	case 'B':
		s->row += n;
		break;
	case 'C':
		s->col += n;
		break;
	case 'D':
		s->col = s->col > n ? s->col - n : 0;
		break;
	case 'G':
		s->col = n - 1;
		break;
	case 'K': {
		guint mode = param(params, 0, 0);

		if (mode == 0 && s->col < line->len) {
			g_array_set_size(line, s->col);
		} else if (mode == 1) {
			for (guint i = 0; i <= s->col && i < line->len; i++)
				g_array_index(line, gunichar, i) = ' ';
		} else if (mode == 2) {
			g_array_set_size(line, 0);
		}
		break;
	}
	case 'J':
		if (s->col < line->len)
			g_array_set_size(line, s->col);
		if (s->lines->len > s->row + 1)
			g_ptr_array_set_size(s->lines, s->row + 1);
		break;
	case 'P':
		if (s->col < line->len)
			g_array_remove_range(line, s->col, MIN(n, line->len - s->col));
		break;
	case 'X':
		for (guint i = s->col; i < s->col + n && i < line->len; i++)
			g_array_index(line, gunichar, i) = ' ';
		break;
	case '@':
		for (guint i = 0; i < n && s->col <= line->len; i++) {
			gunichar space = ' ';
			g_array_insert_val(line, s->col, space);
		}
		break;
	default:
		/* colours (m) and the rest change nothing of the text */
		break;
	}
}

static void
screen_char(Screen *s, gunichar c)
{
	switch (s->state) {
	case 1:
		if (c == '[') {
			s->state = 2;
			g_string_truncate(s->params, 0);
		} else if (c == ']') {
			s->state = 3;
		} else if (c == '(' || c == ')') {
			s->state = 4;
		} else {
			s->state = 0; /* ESC = and the like */
		}
		return;
	case 2:
		if (c >= 0x40 && c <= 0x7e) {
			s->state = 0;
			screen_csi(s, (gchar)c);
		} else {
			g_string_append_unichar(s->params, c);
		}
		return;
	case 3:
		if (c == '\a' || c == '\\')
			s->state = 0;
		return;
	case 4:
		s->state = 0;
		return;
	default:
		break;
	}
	switch (c) {
	case 0x1b:
		s->state = 1;
		break;
	case '\r':
		s->col = 0;
		break;
	case '\n':
		s->row++;
		screen_line(s, s->row);
		break;
	case '\b':
		if (s->col > 0)
			s->col--;
		break;
	case '\t':
		s->col = (s->col / 8 + 1) * 8;
		break;
	default:
		if (c >= 0x20)
			screen_put(s, c);
		break;
	}
}

static void
screen_feed(Screen *s, const guint8 *data, gsize len)
{
	g_byte_array_append(s->partial, data, (guint)len);
	while (s->partial->len > 0) {
		const gchar *p = (const gchar *)s->partial->data;
		gunichar c = g_utf8_get_char_validated(p, s->partial->len);
		guint used;

		if (c == (gunichar)-2)
			return; /* the rest comes with the next read */
		if (c == (gunichar)-1) {
			c = 0xfffd;
			used = 1;
		} else {
			used = (guint)(g_utf8_next_char(p) - p);
		}
		g_byte_array_remove_range(s->partial, 0, used);
		screen_char(s, c);
	}
}

static gchar *
line_to_string(GArray *line)
{
	g_autoptr(GString) str = g_string_new(NULL);

	for (guint i = 0; i < line->len; i++)
		g_string_append_unichar(str, g_array_index(line, gunichar, i));
	while (str->len > 0 && str->str[str->len - 1] == ' ')
		g_string_truncate(str, str->len - 1);
	return g_string_free(g_steal_pointer(&str), FALSE);
}

static gchar *
screen_text(Screen *s)
{
	g_autoptr(GString) str = g_string_new(NULL);

	for (guint i = 0; i < s->lines->len; i++) {
		g_autofree gchar *line = line_to_string(g_ptr_array_index(s->lines, i));

		g_string_append(str, line);
		g_string_append_c(str, '\n');
	}
	return g_string_free(g_steal_pointer(&str), FALSE);
}

/* the line the cursor is on, where readline draws the prompt */
static gchar *
screen_cursor_line(Screen *s)
{
	return line_to_string(screen_line(s, s->row));
}

/* the client in a pseudo-terminal */

typedef struct {
	GSubprocess *proc; /* (owned) */
	gint master;
	gint slave; /* kept open, to read the terminal's modes after the exit */
	guint watch_id;
	GByteArray *raw; /* (owned) all the client wrote */
	Screen *screen;	 /* (owned) */
	gboolean exited;
	gint status; /* exit status, or -1 if killed */
} Term;

static void
term_read_all(Term *t)
{
	guint8 buf[4096];
	gssize n;

	if (t->master < 0)
		return;
	while ((n = read(t->master, buf, sizeof(buf))) > 0) {
		g_byte_array_append(t->raw, buf, (guint)n);
		screen_feed(t->screen, buf, (gsize)n);
	}
}

static gboolean
term_readable_cb(gint fd, GIOCondition condition, gpointer user_data)
{
	Term *t = user_data;

	term_read_all(t);
	if ((condition & (G_IO_HUP | G_IO_ERR)) != 0 && (condition & G_IO_IN) == 0) {
		t->watch_id = 0;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static void
term_exited_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	Term *t = user_data;
	GSubprocess *proc = G_SUBPROCESS(source);

	g_subprocess_wait_finish(proc, result, NULL);
	t->status = g_subprocess_get_if_exited(proc) ? g_subprocess_get_exit_status(proc) : -1;
	t->exited = TRUE;
	client_pid = 0;
}

/* the child: a session of its own with the pty as its terminal */
static void
term_child_setup(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setsid();
	ioctl(STDIN_FILENO, TIOCSCTTY, 0);
}

typedef enum {
	TERM_DEFAULT = 0,
	TERM_KEEP_NO_COLOR_UNSET = 1 << 0, /* NO_COLOR not in the environment */
	TERM_SHELL = 1 << 1,		   /* an interactive bash, not the client */
} TermFlags;

/* starts `codechat --server URI --nick NICK chat ARGS…` in a new pty */
static Term *
term_start(const gchar *uri, const gchar *nick, TermFlags flags, const gchar *const *args)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GError) error = NULL;
	struct winsize ws = {.ws_row = TERM_ROWS, .ws_col = TERM_COLS};
	Term *t = g_new0(Term, 1);
	const gchar *pid;

	g_assert_cmpint(openpty(&t->master, &t->slave, NULL, NULL, &ws), ==, 0);
	g_assert_cmpint(fcntl(t->master, F_SETFL, fcntl(t->master, F_GETFL) | O_NONBLOCK), ==, 0);
	t->raw = g_byte_array_new();
	t->screen = screen_new();

	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_NONE);
	g_subprocess_launcher_set_child_setup(launcher, term_child_setup, NULL, NULL);
	/* among the test programs, whose names filename completion would offer */
	g_subprocess_launcher_set_cwd(launcher, g_test_get_dir(G_TEST_BUILT));
	g_subprocess_launcher_take_stdin_fd(launcher, dup(t->slave));
	g_subprocess_launcher_take_stdout_fd(launcher, dup(t->slave));
	g_subprocess_launcher_take_stderr_fd(launcher, dup(t->slave));
	/* the settings come from the test, not from whoever runs it */
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_SERVER");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_NICK");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_ROOM");
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_TOKEN");
	g_subprocess_launcher_unsetenv(launcher, "G_MESSAGES_DEBUG");
	g_subprocess_launcher_setenv(launcher, "TERM", "xterm", TRUE);
	/* readline's defaults, not the user's ~/.inputrc */
	g_subprocess_launcher_setenv(launcher, "INPUTRC", "/dev/null", TRUE);
	if (flags & TERM_KEEP_NO_COLOR_UNSET)
		g_subprocess_launcher_unsetenv(launcher, "NO_COLOR");
	else
		g_subprocess_launcher_setenv(launcher, "NO_COLOR", "1", TRUE);
	if (g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS") != NULL)
		g_subprocess_launcher_setenv(launcher,
					     "ASAN_OPTIONS",
					     g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS"),
					     TRUE);

	if (flags & TERM_SHELL) {
		/* a shell with job control, for Ctrl-Z and fg */
		g_subprocess_launcher_setenv(launcher, "PS1", "$ ", TRUE);
		g_subprocess_launcher_setenv(launcher, "HISTFILE", "/dev/null", TRUE);
		g_ptr_array_add(argv, g_strdup("/bin/bash"));
		g_ptr_array_add(argv, g_strdup("--norc"));
		g_ptr_array_add(argv, g_strdup("--noprofile"));
		g_ptr_array_add(argv, g_strdup("-i"));
	} else {
		g_ptr_array_add(argv, g_strdup(codechat_test_client_path()));
		g_ptr_array_add(argv, g_strdup("--server"));
		g_ptr_array_add(argv, g_strdup(uri));
		g_ptr_array_add(argv, g_strdup("--nick"));
		g_ptr_array_add(argv, g_strdup(nick));
		/* the global options are taken after the command too */
		g_ptr_array_add(argv, g_strdup("chat"));
		for (guint i = 0; args != NULL && args[i] != NULL; i++)
			g_ptr_array_add(argv, g_strdup(args[i]));
	}
	g_ptr_array_add(argv, NULL);

	t->proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	pid = g_subprocess_get_identifier(t->proc);
	client_pid = (pid_t)g_ascii_strtoll(pid, NULL, 10);
	signal(SIGABRT, abort_handler);
	g_subprocess_wait_async(t->proc, NULL, term_exited_cb, t);
	t->watch_id = g_unix_fd_add(t->master, G_IO_IN | G_IO_HUP | G_IO_ERR, term_readable_cb, t);
	return t;
}

static void
term_free(Term *t)
{
	if (!t->exited) {
		g_subprocess_force_exit(t->proc);
		while (!t->exited)
			g_main_context_iteration(NULL, TRUE);
	}
	g_clear_handle_id(&t->watch_id, g_source_remove);
	if (t->master >= 0)
		close(t->master);
	close(t->slave);
	g_object_unref(t->proc);
	g_byte_array_unref(t->raw);
	screen_free(t->screen);
	g_free(t);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Term, term_free)

static void
term_dump(Term *t)
{
	g_autofree gchar *text = screen_text(t->screen);
	g_autofree gchar *raw = g_strndup((const gchar *)t->raw->data, t->raw->len);
	g_autofree gchar *escaped = g_strescape(raw, NULL);

	g_test_message("screen:\n%s", text);
	g_test_message("raw: %s", escaped);
}

static void
term_type(Term *t, const gchar *keys)
{
	gsize len = strlen(keys);

	g_assert_cmpint(write(t->master, keys, len), ==, (gssize)len);
}

static guint
count_in(const gchar *haystack, const gchar *needle)
{
	guint n = 0;

	for (const gchar *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static guint
term_count(Term *t, const gchar *needle)
{
	g_autofree gchar *text = screen_text(t->screen);

	return count_in(text, needle);
}

typedef gboolean (*TermCheck)(Term *t, gconstpointer data);

/* iterates the main context until @check holds, failing after WAIT_MS */
static void
term_wait(Term *t, TermCheck check, gconstpointer data, const gchar *what)
{
	gboolean timed_out = FALSE;
	guint id = g_timeout_add(WAIT_MS, flag_cb, &timed_out);

	while (!check(t, data) && !timed_out)
		g_main_context_iteration(NULL, TRUE);
	if (!timed_out)
		g_source_remove(id);
	if (timed_out) {
		term_dump(t);
		g_test_message("waited in vain for %s", what);
		g_assert_not_reached();
	}
}

static gboolean
check_contains(Term *t, gconstpointer data)
{
	term_read_all(t);
	return term_count(t, data) > 0;
}

/* waits until the screen shows @text */
static void
term_wait_text(Term *t, const gchar *text)
{
	term_wait(t, check_contains, text, text);
}

static gboolean
check_cursor_line(Term *t, gconstpointer data)
{
	g_autofree gchar *line = NULL;

	term_read_all(t);
	line = screen_cursor_line(t->screen);
	/* the prompt ends with a space, which the screen does not keep */
	return g_strcmp0(g_strchomp(line), data) == 0;
}

/* waits until the line with the cursor reads @text (trailing spaces aside) */
static void
term_wait_cursor_line(Term *t, const gchar *text)
{
	g_autofree gchar *want = g_strchomp(g_strdup(text));

	term_wait(t, check_cursor_line, want, want);
}

static gboolean
check_exited(Term *t, gconstpointer data)
{
	term_read_all(t);
	return t->exited;
}

/* waits for the exit and returns its status */
static gint
term_wait_exit(Term *t)
{
	term_wait(t, check_exited, NULL, "the client to exit");
	term_read_all(t);
	return t->status;
}

/* connected, the backlog shown, the prompt drawn */
static void
term_wait_ready(Term *t, const gchar *room)
{
	g_autofree gchar *talking = g_strdup_printf("-- now talking in #%s", room);
	g_autofree gchar *prompt = g_strdup_printf("[#%s]", room);

	term_wait_text(t, talking);
	term_wait_cursor_line(t, prompt);
}

/* readline gave the terminal back as it found it */
static void
term_assert_sane(Term *t)
{
	struct termios tio;

	g_assert_cmpint(tcgetattr(t->slave, &tio), ==, 0);
	g_assert_true((tio.c_lflag & ICANON) != 0);
	g_assert_true((tio.c_lflag & ECHO) != 0);
	/* bracketed paste was turned off again */
	{
		static const gchar on[] = "\033[?2004h";
		static const gchar off[] = "\033[?2004l";
		g_autofree gchar *raw = g_strndup((const gchar *)t->raw->data, t->raw->len);
		const gchar *last_on = g_strrstr(raw, on);
		const gchar *last_off = g_strrstr(raw, off);

		g_assert_true(last_on == NULL || (last_off != NULL && last_off > last_on));
	}
}

/* the other side */

typedef struct {
	CodechatTestDaemon *daemon; /* (owned) */
	CodechatTestWs *bob;	    /* (owned) */
} Fixture;

static void
bob_join(CodechatTestWs *bob, const gchar *room)
{
	g_autoptr(JsonObject) joined = NULL;

	codechat_test_ws_sendf(bob, "{\"type\":\"join\",\"room\":\"%s\"}", room);
	joined = codechat_test_ws_expect(bob, "joined");
	g_assert_cmpstr(codechat_test_json_string(joined, "room"), ==, room);
}

static CodechatTestWs *
bob_new(const gchar *uri)
{
	CodechatTestWs *bob = codechat_test_ws_new_client(uri, "bob", NULL);

	bob_join(bob, "general");
	return bob;
}

/* the next frame of @type, skipping presence and the acknowledgements of
 * bob's own messages */
static JsonObject *
bob_next(CodechatTestWs *bob, const gchar *type)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_MS * 1000;

	for (;;) {
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;
		g_autoptr(JsonObject) obj = NULL;
		const gchar *got;

		g_assert_cmpint(left, >, 0);
		obj = codechat_test_ws_recv(bob, (guint)left);
		g_assert_nonnull(obj);
		got = codechat_test_json_string(obj, "type");
		if (g_strcmp0(got, type) == 0 && !json_object_has_member(obj, "ref"))
			return g_steal_pointer(&obj);
		g_assert_true(g_strcmp0(got, "presence") == 0 ||
			      json_object_has_member(obj, "ref"));
	}
}

/* the next message bob gets, which must be from alice */
static JsonObject *
bob_expect(CodechatTestWs *bob, const gchar *text)
{
	g_autoptr(JsonObject) msg = bob_next(bob, "message");

	g_assert_cmpstr(codechat_test_json_string(msg, "from"), ==, "alice");
	g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, text);
	return g_steal_pointer(&msg);
}

/* the next presence of alice in @room, which must be @event; presence
 * in other rooms is skipped */
static void
bob_expect_presence(CodechatTestWs *bob, const gchar *room, const gchar *event)
{
	for (;;) {
		g_autoptr(JsonObject) presence = bob_next(bob, "presence");

		if (g_strcmp0(codechat_test_json_string(presence, "room"), room) != 0)
			continue;
		g_assert_cmpstr(codechat_test_json_string(presence, "nick"), ==, "alice");
		g_assert_cmpstr(codechat_test_json_string(presence, "event"), ==, event);
		return;
	}
}

/* waits for the acknowledgement of what bob said with ref "b" */
static void
bob_wait_ack(CodechatTestWs *bob)
{
	g_autoptr(JsonObject) ack = NULL;

	for (;;) {
		g_clear_pointer(&ack, json_object_unref);
		ack = codechat_test_ws_recv(bob, WAIT_MS);
		g_assert_nonnull(ack);
		if (g_strcmp0(codechat_test_json_string(ack, "ref"), "b") == 0)
			break;
	}
	g_assert_cmpstr(codechat_test_json_string(ack, "type"), ==, "message");
}

/* bob says @text in @room and waits for the acknowledgement */
static void
bob_say(CodechatTestWs *bob, const gchar *room, const gchar *text)
{
	codechat_test_ws_sendf(bob,
			       "{\"type\":\"say\",\"room\":\"%s\",\"text\":\"%s\",\"ref\":\"b\"}",
			       room,
			       text);
	bob_wait_ack(bob);
}

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	f->daemon = codechat_test_daemon_start(NULL);
	track_daemon(f->daemon);
	f->bob = bob_new(f->daemon->uri);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	g_clear_pointer(&f->bob, codechat_test_ws_free);
	daemon_pid = 0;
	g_assert_cmpint(codechat_test_daemon_stop(f->daemon), ==, 0);
	g_clear_pointer(&f->daemon, codechat_test_daemon_free);
}

static Term *
alice_start(Fixture *f, const gchar *const *args)
{
	Term *t = term_start(f->daemon->uri, "alice", TERM_DEFAULT, args);

	term_wait_ready(t, "general");
	return t;
}

/* the tests */

/* the backlog on start, a line said to the room, Ctrl-D */
static void
test_say(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = NULL;
	g_autoptr(JsonObject) msg = NULL;
	g_autofree gchar *text = NULL;
	const gchar *before;
	const gchar *first;
	const gchar *second;

	bob_say(f->bob, "general", "early one");
	bob_say(f->bob, "general", "early two");
	t = alice_start(f, NULL);

	/* the backlog, in order, before the room is live */
	text = screen_text(t->screen);
	first = strstr(text, "<bob> early one");
	second = strstr(text, "<bob> early two");
	before = strstr(text, "-- now talking in #general");
	g_assert_nonnull(first);
	g_assert_nonnull(second);
	g_assert_true(first < second && second < before);
	g_assert_nonnull(strstr(text, "-- connected to "));

	term_type(t, "hi bob\r");
	msg = bob_expect(f->bob, "hi bob");
	g_assert_cmpstr(codechat_test_json_string(msg, "room"), ==, "general");
	g_assert_cmpstr(codechat_test_json_string(msg, "kind"), ==, "text");
	/* the server's copy, with a timestamp, and a fresh prompt */
	term_wait_text(t, "] #general <alice> hi bob");
	term_wait_cursor_line(t, PROMPT_GEN);
	{
		g_autofree gchar *now = screen_text(t->screen);

		g_assert_true(
		    g_regex_match_simple("\\[\\d\\d:\\d\\d:\\d\\d\\] #general <alice> hi bob",
					 now,
					 0,
					 0));
		/* each shown once */
		g_assert_cmpuint(count_in(now, "<bob> early one"), ==, 1);
		g_assert_cmpuint(count_in(now, "<alice> hi bob"), ==, 1);
	}

	/* Ctrl-D on an empty line */
	term_type(t, "\004");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
	term_assert_sane(t);
}

/* what bob says appears above the prompt; the half-typed line stays */
static void
test_typing_kept(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);
	g_autoptr(JsonObject) msg = NULL;
	g_autofree gchar *text = NULL;
	g_auto(GStrv) lines = NULL;
	guint n;

	term_type(t, "hel");
	term_wait_cursor_line(t, PROMPT_GEN "hel");
	bob_say(f->bob, "general", "interrupting you");
	term_wait_text(t, "<bob> interrupting you");
	/* the message is the line above the prompt, which is drawn again
	 * with what was typed */
	term_wait_cursor_line(t, PROMPT_GEN "hel");
	text = screen_text(t->screen);
	lines = g_strsplit(g_strchomp(text), "\n", -1);
	n = g_strv_length(lines);
	g_assert_cmpuint(n, >=, 2);
	g_assert_nonnull(strstr(lines[n - 2], "<bob> interrupting you"));
	g_assert_cmpstr(lines[n - 1], ==, "[#general] hel");

	term_type(t, "lo\r");
	msg = bob_expect(f->bob, "hello");
	term_wait_text(t, "<alice> hello");
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
	term_assert_sane(t);
}

static void
test_me(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);
	g_autoptr(JsonObject) msg = NULL;

	term_type(t, "/me waves\r");
	msg = bob_expect(f->bob, "waves");
	g_assert_cmpstr(codechat_test_json_string(msg, "kind"), ==, "action");
	g_assert_cmpstr(codechat_test_json_string(msg, "room"), ==, "general");
	term_wait_text(t, "#general * alice waves");
	g_assert_cmpuint(term_count(t, "<alice> waves"), ==, 0);
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

static void
test_msg(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);
	g_autoptr(JsonObject) msg = NULL;

	term_type(t, "/msg bob just between us\r");
	msg = bob_expect(f->bob, "just between us");
	g_assert_cmpstr(codechat_test_json_string(msg, "to"), ==, "bob");
	g_assert_false(json_object_has_member(msg, "room"));
	term_wait_text(t, "<alice> -> bob: just between us");

	/* and back */
	codechat_test_ws_send_text(
	    f->bob,
	    "{\"type\":\"say\",\"to\":\"alice\",\"text\":\"noted\",\"ref\":\"b\"}");
	bob_wait_ack(f->bob);
	term_wait_text(t, "<bob> -> alice: noted");
	/* each once: the acknowledgement is alice's copy */
	g_assert_cmpuint(term_count(t, "<alice> -> bob: just between us"), ==, 1);
	g_assert_cmpuint(term_count(t, "<bob> -> alice: noted"), ==, 1);

	/* a bad nick is refused here, nothing is sent */
	term_type(t, "/msg 9lives hi\r");
	term_wait_text(t, "-- ");
	term_type(t, "/msg bob\r");
	term_wait_text(t, "-- usage: /msg NICK TEXT");
	/* the next message bob gets is this one: nothing was sent between */
	g_clear_pointer(&msg, json_object_unref);
	term_type(t, "/msg bob last one\r");
	msg = bob_expect(f->bob, "last one");
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

static void
test_join_part(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = NULL;
	g_autoptr(JsonObject) msg = NULL;

	bob_join(f->bob, "dev");
	bob_say(f->bob, "dev", "dev backlog");
	t = alice_start(f, NULL);

	term_type(t, "/join dev\r");
	term_wait_ready(t, "dev");
	term_wait_text(t, "<bob> dev backlog");
	bob_expect_presence(f->bob, "dev", "join");

	term_type(t, "in dev now\r");
	msg = bob_expect(f->bob, "in dev now");
	g_assert_cmpstr(codechat_test_json_string(msg, "room"), ==, "dev");

	/* messages of both rooms show */
	bob_say(f->bob, "general", "general still here");
	term_wait_text(t, "#general <bob> general still here");

	term_type(t, "/part\r");
	term_wait_text(t, "-- left #dev");
	term_wait_cursor_line(t, PROMPT_GEN);
	bob_expect_presence(f->bob, "dev", "part");

	/* dev is no longer shown, general is */
	bob_say(f->bob, "dev", "alice will not see this");
	bob_say(f->bob, "general", "but this");
	term_wait_text(t, "<bob> but this");
	g_assert_cmpuint(term_count(t, "alice will not see this"), ==, 0);

	/* back to dev: the backlog shows what was missed */
	term_type(t, "/join #dev\r");
	term_wait_ready(t, "dev");
	term_wait_text(t, "<bob> alice will not see this");
	g_assert_cmpuint(term_count(t, "<bob> dev backlog"), ==, 1);

	term_type(t, "/part general\r");
	term_wait_text(t, "-- left #general");
	term_wait_cursor_line(t, "[#dev]");
	term_type(t, "/part\r");
	term_wait_cursor_line(t, "[no room]");
	term_type(t, "anyone?\r");
	term_wait_text(t, "-- you are in no room: /join ROOM first");
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

static void
test_who(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);

	term_type(t, "/who\r");
	term_wait_text(t, "-- #general has 2 members: ");
	{
		g_autofree gchar *text = screen_text(t->screen);
		const gchar *line = strstr(text, "-- #general has 2 members: ");
		g_autofree gchar *rest = g_strndup(line, strcspn(line, "\n"));

		g_assert_nonnull(strstr(rest, "alice"));
		g_assert_nonnull(strstr(rest, "bob"));
	}
	term_type(t, "/who dev\r");
	term_wait_text(t, "-- nobody is in #dev");
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

static void
test_rooms(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = NULL;

	bob_join(f->bob, "ops");
	bob_say(f->bob, "ops", "one");
	bob_say(f->bob, "ops", "two");
	t = alice_start(f, NULL);
	term_type(t, "/rooms\r");
	term_wait_text(t, "-- rooms:");
	term_wait_text(t, "#ops ");
	{
		g_autofree gchar *text = screen_text(t->screen);

		g_assert_true(g_regex_match_simple("#ops +1 member +last id 2", text, 0, 0));
		g_assert_true(g_regex_match_simple("#general +2 members", text, 0, 0));
	}
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

static void
test_history(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = NULL;
	const gchar *const args[] = {"--room", "general", NULL};

	for (guint i = 1; i <= 5; i++) {
		g_autofree gchar *text = g_strdup_printf("old %u", i);
		bob_say(f->bob, "general", text);
	}
	t = alice_start(f, args);
	term_type(t, "/history 2\r");
	term_wait_text(t, "-- end of history");
	{
		g_autofree gchar *text = screen_text(t->screen);
		const gchar *head = strstr(text, "-- the last 2 messages of #general:");
		g_auto(GStrv) lines = NULL;

		g_assert_nonnull(head);
		lines = g_strsplit(head, "\n", 4);
		g_assert_cmpuint(g_strv_length(lines), ==, 4);
		g_assert_nonnull(strstr(lines[1], "<bob> old 4"));
		g_assert_nonnull(strstr(lines[2], "<bob> old 5"));
		g_assert_true(g_str_has_prefix(lines[3], "-- end of history"));
	}
	term_type(t, "/history 0\r");
	term_wait_text(t, "-- usage: /history [N]");
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

static void
test_code(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);
	g_autoptr(JsonObject) msg = NULL;

	term_type(t, "/code c\r");
	term_wait_cursor_line(t, "...");
	/* inside the block, a line starting with / is code, not a command */
	term_type(t, "/* the answer */\r");
	term_type(t, "int\r");
	term_type(t, "main(void)\r");
	term_type(t, "{ return 0; }\r");
	term_wait_text(t, "... { return 0; }");
	term_type(t, ".\r");
	/* one message, the whole block: nothing was sent line by line */
	msg = bob_expect(f->bob, "/* the answer */\nint\nmain(void)\n{ return 0; }");
	g_assert_cmpstr(codechat_test_json_string(msg, "kind"), ==, "code");
	g_assert_cmpstr(codechat_test_json_string(msg, "lang"), ==, "c");
	term_wait_text(t,
		       "<alice> code (c):\n    /* the answer */\n    int\n    main(void)\n    { "
		       "return 0; }\n");
	term_wait_cursor_line(t, PROMPT_GEN);
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

/* up-arrow recalls the previous line */
static void
test_input_history(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);
	g_autoptr(JsonObject) first = NULL;
	g_autoptr(JsonObject) second = NULL;
	g_autoptr(JsonObject) again = NULL;

	term_type(t, "first line\r");
	first = bob_expect(f->bob, "first line");
	term_type(t, "second line\r");
	second = bob_expect(f->bob, "second line");
	term_wait_text(t, "<alice> second line");
	term_wait_cursor_line(t, PROMPT_GEN);
	term_type(t, "\033[A");
	term_wait_cursor_line(t, PROMPT_GEN "second line");
	term_type(t, "\033[A");
	term_wait_cursor_line(t, PROMPT_GEN "first line");
	term_type(t, " again\r");
	again = bob_expect(f->bob, "first line again");
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

/* Tab completes commands, rooms and nicks */
static void
test_completion(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);
	g_autoptr(JsonObject) msg = NULL;

	term_type(t, "/jo\t");
	term_wait_cursor_line(t, PROMPT_GEN "/join");
	term_type(t, "gen\t");
	term_wait_cursor_line(t, PROMPT_GEN "/join general");
	/* never a file name: the client runs beside libcodechat-test-util.a */
	term_type(t, "\025libco\tX");
	term_wait_cursor_line(t, PROMPT_GEN "libcoX");
	term_type(t, "\025");
	term_wait_cursor_line(t, PROMPT_GEN);
	term_type(t, "thanks b\t");
	term_wait_cursor_line(t, PROMPT_GEN "thanks bob");
	term_type(t, "\r");
	msg = bob_expect(f->bob, "thanks bob ");
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

/* /help; an unknown command is not sent; // sends a slash */
static void
test_commands(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);
	g_autoptr(JsonObject) msg = NULL;

	term_type(t, "/help\r");
	term_wait_text(t, "/join ROOM");
	term_wait_text(t, "/code [LANG]");
	term_wait_text(t, "/quit");
	term_type(t, "/frobnicate now\r");
	term_wait_text(t, "-- unknown command “/frobnicate”: /help lists the commands");
	term_type(t, "//frobnicate\r");
	/* the next message is this one: the unknown command was not sent */
	msg = bob_expect(f->bob, "/frobnicate");
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

/* SIGTERM closes the session and gives the terminal back */
static void
test_sigterm(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);

	term_type(t, "half a line");
	term_wait_cursor_line(t, PROMPT_GEN "half a line");
	g_subprocess_send_signal(t->proc, SIGTERM);
	g_assert_cmpint(term_wait_exit(t), ==, 0);
	term_assert_sane(t);
	/* what was typed stays on the screen, the shell goes below it */
	g_assert_cmpuint(term_count(t, PROMPT_GEN "half a line\n"), ==, 1);
	/* a clean close: bob sees alice go */
	bob_expect_presence(f->bob, "general", "join");
	bob_expect_presence(f->bob, "general", "quit");
}

/* Ctrl-C, as typed: the terminal sends SIGINT, which quits cleanly */
static void
test_ctrl_c(Fixture *f, gconstpointer data)
{
	const gchar *const quiet[] = {"--quiet", NULL};
	g_autoptr(Term) t = alice_start(f, quiet);

	/* --quiet: bob coming and going is not shown, what he says is */
	codechat_test_ws_free(f->bob);
	f->bob = bob_new(f->daemon->uri);
	bob_say(f->bob, "general", "hello quiet alice");
	term_wait_text(t, "<bob> hello quiet alice");
	g_assert_cmpuint(term_count(t, "bob quit"), ==, 0);
	g_assert_cmpuint(term_count(t, "bob joined"), ==, 0);

	term_type(t, "never sent");
	term_wait_cursor_line(t, PROMPT_GEN "never sent");
	term_type(t, "\003");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
	term_assert_sane(t);
	bob_expect_presence(f->bob, "general", "quit");
}

/* Ctrl-Z in a shell with job control: the shell gets a sane terminal
 * while chat is stopped; after fg, the prompt and the half-typed line
 * are back and typing goes on */
static void
test_ctrl_z(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = NULL;
	g_autoptr(JsonObject) msg = NULL;
	g_autofree gchar *command = NULL;

	if (!g_file_test("/bin/bash", G_FILE_TEST_IS_EXECUTABLE)) {
		g_test_skip("no /bin/bash for job control");
		return;
	}
	t = term_start(f->daemon->uri, "alice", TERM_SHELL, NULL);
	term_wait_cursor_line(t, "$");
	command = g_strdup_printf("%s --server %s --nick alice chat\r",
				  codechat_test_client_path(),
				  f->daemon->uri);
	term_type(t, command);
	term_wait_ready(t, "general");
	term_type(t, "abc");
	term_wait_cursor_line(t, PROMPT_GEN "abc");
	term_type(t, "\032");
	term_wait_text(t, "Stopped");
	term_wait_cursor_line(t, "$");
	/* the shell works as usual meanwhile */
	term_type(t, "echo from the shell\r");
	term_wait_text(t, "\nfrom the shell\n");
	term_wait_cursor_line(t, "$");
	/* back in the foreground, chat draws its prompt and the line again
	 * at once */
	term_type(t, "fg\r");
	term_wait_cursor_line(t, PROMPT_GEN "abc");
	bob_say(f->bob, "general", "welcome back");
	term_wait_text(t, "<bob> welcome back");
	term_wait_cursor_line(t, PROMPT_GEN "abc");
	term_type(t, "def\r");
	msg = bob_expect(f->bob, "abcdef");
	term_type(t, "/quit\r");
	term_wait_cursor_line(t, "$");
	term_type(t, "exit\r");
	/* bash exits with the status of the last command: chat's */
	g_assert_cmpint(term_wait_exit(t), ==, 0);
}

/* the terminal is closed under it (the window, an ssh session gone):
 * the client gets SIGHUP and closes its session instead of dying */
static void
test_hangup(Fixture *f, gconstpointer data)
{
	g_autoptr(Term) t = alice_start(f, NULL);

	term_type(t, "typing when the window closes");
	term_wait_cursor_line(t, PROMPT_GEN "typing when the window closes");
	g_clear_handle_id(&t->watch_id, g_source_remove);
	close(t->master);
	t->master = -1;
	term_wait(t, check_exited, NULL, "the client to exit");
	g_assert_cmpint(t->status, ==, 0);
	bob_expect_presence(f->bob, "general", "join");
	bob_expect_presence(f->bob, "general", "quit");
}

/* colours: on with --color=always, a colour per nick; off with NO_COLOR
 * and with --color=never */
static const gchar *
sgr_before(const gchar *raw, const gchar *needle, gchar **sgr)
{
	const gchar *at = strstr(raw, needle);
	const gchar *esc;

	g_assert_nonnull(at);
	esc = g_strrstr_len(raw, at - raw, "\033[");
	g_assert_nonnull(esc);
	*sgr = g_strndup(esc, at - esc);
	return at;
}

static gboolean
has_sgr(Term *t)
{
	g_autofree gchar *raw = g_strndup((const gchar *)t->raw->data, t->raw->len);

	return g_regex_match_simple("\033\\[[0-9;]*m", raw, 0, 0);
}

static void
test_colors(Fixture *f, gconstpointer data)
{
	const gchar *const always[] = {"--color=always", NULL};
	const gchar *const never[] = {"--color=never", NULL};
	g_autoptr(JsonObject) msg = NULL;

	{
		g_autoptr(Term) t = alice_start(f, always);
		g_autofree gchar *raw = NULL;
		g_autofree gchar *bob_sgr = NULL;
		g_autofree gchar *alice_sgr = NULL;

		bob_say(f->bob, "general", "colourful");
		term_wait_text(t, "<bob> colourful");
		term_type(t, "me too\r");
		msg = bob_expect(f->bob, "me too");
		term_wait_text(t, "<alice> me too");
		term_type(t, "/who\r");
		term_wait_text(t, "-- #general has 2 members: ");
		raw = g_strndup((const gchar *)t->raw->data, t->raw->len);
		/* colours in a line of the client's own are not taken for
		 * control characters and replaced */
		g_assert_null(strstr(raw, "\xef\xbf\xbd"));
		sgr_before(raw, "<bob>", &bob_sgr);
		sgr_before(raw, "<alice>", &alice_sgr);
		g_test_message("bob %s, alice %s", bob_sgr + 1, alice_sgr + 1);
		g_assert_true(g_str_has_suffix(bob_sgr, "m"));
		g_assert_true(g_str_has_suffix(alice_sgr, "m"));
		g_assert_cmpstr(bob_sgr, !=, alice_sgr);
		/* and in /who, each nick in its colour */
		{
			g_autofree gchar *who = g_strdup_printf("%sbob\033[0m", bob_sgr);
			g_autofree gchar *who_alice = g_strdup_printf("%salice\033[0m", alice_sgr);

			g_assert_nonnull(strstr(raw, who));
			g_assert_nonnull(strstr(raw, who_alice));
		}
		/* the same nick, the same colour: in the backlog and live */
		{
			g_autofree gchar *live = NULL;

			sgr_before(raw, "<bob>\033[0m colourful", &live);
			g_assert_cmpstr(live, ==, bob_sgr);
		}
		term_type(t, "/quit\r");
		g_assert_cmpint(term_wait_exit(t), ==, 0);
	}
	{
		/* NO_COLOR=1 and auto */
		g_autoptr(Term) t = alice_start(f, NULL);

		bob_say(f->bob, "general", "plain");
		term_wait_text(t, "<bob> plain");
		g_assert_false(has_sgr(t));
		term_type(t, "/quit\r");
		g_assert_cmpint(term_wait_exit(t), ==, 0);
	}
	{
		/* no NO_COLOR, but --color=never */
		g_autoptr(Term) t =
		    term_start(f->daemon->uri, "alice", TERM_KEEP_NO_COLOR_UNSET, never);

		term_wait_ready(t, "general");
		bob_say(f->bob, "general", "plain again");
		term_wait_text(t, "<bob> plain again");
		g_assert_false(has_sgr(t));
		term_type(t, "/quit\r");
		g_assert_cmpint(term_wait_exit(t), ==, 0);
	}
	{
		/* and auto on a terminal without NO_COLOR: colours */
		g_autoptr(Term) t =
		    term_start(f->daemon->uri, "alice", TERM_KEEP_NO_COLOR_UNSET, NULL);

		term_wait_ready(t, "general");
		g_assert_true(has_sgr(t));
		term_type(t, "/quit\r");
		g_assert_cmpint(term_wait_exit(t), ==, 0);
	}
}

/* a wrong address: a clear message and exit status 2 */
static void
test_cannot_connect(void)
{
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new(loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;
	g_autoptr(Term) t = NULL;
	g_autofree gchar *uri = NULL;

	/* a port bound but not listening: nobody answers there */
	socket =
	    g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_assert_no_error(error);
	g_socket_bind(socket, address, FALSE, &error);
	g_assert_no_error(error);
	bound = g_socket_get_local_address(socket, &error);
	g_assert_no_error(error);
	uri = g_strdup_printf("ws://127.0.0.1:%u/v1/ws",
			      g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound)));

	t = term_start(uri, "alice", TERM_DEFAULT, NULL);
	g_assert_cmpint(term_wait_exit(t), ==, 2);
	term_wait_text(t, "codechat: ");
	g_assert_cmpuint(term_count(t, uri), >, 0);
	term_assert_sane(t);
}

/* the daemon restarts: the prompt says offline, a line typed meanwhile
 * is sent once back, and what bob said while alice was away shows once;
 * also when the daemon comes back with a new, empty history store, whose
 * ids start from 1 again */
static void
test_restart(gconstpointer data)
{
	gboolean new_store = GPOINTER_TO_INT(data);
	g_autoptr(CodechatTestDaemon) first = NULL;
	g_autoptr(CodechatTestDaemon) second = NULL;
	g_autoptr(CodechatTestWs) bob = NULL;
	g_autoptr(Term) t = NULL;
	g_autoptr(JsonObject) msg = NULL;

	first = codechat_test_daemon_start(NULL);
	track_daemon(first);
	bob = bob_new(first->uri);
	bob_say(bob, "general", "before the restart");
	t = term_start(first->uri, "alice", TERM_DEFAULT, NULL);
	term_wait_ready(t, "general");
	term_wait_text(t, "<bob> before the restart");
	/* alice's own message is no missed one when she resumes */
	term_type(t, "mine before\r");
	term_wait_text(t, "<alice> mine before");
	g_clear_pointer(&bob, codechat_test_ws_free);

	daemon_pid = 0;
	g_assert_cmpint(codechat_test_daemon_stop(first), ==, 0);
	term_wait_text(t, "-- connection lost");
	term_wait_text(t, "reconnecting in ");
	term_wait_cursor_line(t, "[#general (offline)]");
	term_type(t, "typed while away\r");
	term_wait_text(t, "-- not connected: the message will be sent once connected again");
	/* hold alice still while the daemon comes back and bob talks, so
	 * that what he says is surely missed, then replayed */
	g_subprocess_send_signal(t->proc, SIGSTOP);
	{
		g_autofree gchar *port = g_strdup_printf("127.0.0.1:%u", first->port);
		const gchar *const args[] = {"--listen",
					     port,
					     new_store ? NULL : "--data-dir",
					     first->data_dir,
					     NULL};

		second = codechat_test_daemon_start(args);
	}
	track_daemon(second);
	g_assert_cmpstr(second->uri, ==, first->uri);
	bob = bob_new(second->uri);
	bob_say(bob, "general", "said while alice was away");
	g_subprocess_send_signal(t->proc, SIGCONT);

	term_wait_text(t, "-- reconnected to #general");
	if (new_store)
		term_wait_text(t, "history was reset");
	else
		g_assert_cmpuint(term_count(t, "history was reset"), ==, 0);
	term_wait_cursor_line(t, PROMPT_GEN);
	term_wait_text(t, "<bob> said while alice was away");
	if (!new_store)
		term_wait_text(t, "-- resumed #general, 1 missed message");
	msg = bob_expect(bob, "typed while away");
	term_wait_text(t, "<alice> typed while away");

	/* live again, and nothing came twice */
	bob_say(bob, "general", "live again");
	term_wait_text(t, "<bob> live again");
	g_assert_cmpuint(term_count(t, "<bob> said while alice was away"), ==, 1);
	g_assert_cmpuint(term_count(t, "<bob> before the restart"), ==, 1);
	g_assert_cmpuint(term_count(t, "<alice> typed while away"), ==, 1);
	term_type(t, "/quit\r");
	g_assert_cmpint(term_wait_exit(t), ==, 0);
	/* the whole story, in the test log */
	term_dump(t);

	g_clear_pointer(&bob, codechat_test_ws_free);
	daemon_pid = 0;
	g_assert_cmpint(codechat_test_daemon_stop(second), ==, 0);
	/* the first daemon's data dir is the second's: remove it last */
	g_clear_pointer(&second, codechat_test_daemon_free);
}

/* a signal while offline: what was typed meanwhile cannot be sent, and
 * chat says so before it goes */
static void
test_signal_offline(void)
{
	g_autoptr(CodechatTestDaemon) daemon = NULL;
	g_autoptr(Term) t = NULL;

	daemon = codechat_test_daemon_start(NULL);
	track_daemon(daemon);
	t = term_start(daemon->uri, "alice", TERM_DEFAULT, NULL);
	term_wait_ready(t, "general");
	daemon_pid = 0;
	g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
	term_wait_cursor_line(t, "[#general (offline)]");
	term_type(t, "typed into the void\r");
	term_wait_text(t, "-- not connected: the message will be sent once connected again");
	g_subprocess_send_signal(t->proc, SIGTERM);
	g_assert_cmpint(term_wait_exit(t), ==, 0);
	term_assert_sane(t);
	g_assert_cmpuint(term_count(t, "-- not connected: 1 message was not sent"), ==, 1);
}

/* without a terminal: lines from stdin, no prompt, no readline */
static void
test_script(Fixture *f, gconstpointer data)
{
	g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
	    G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) first = NULL;
	g_autoptr(JsonObject) code = NULL;
	g_autofree gchar *out = NULL;

	if (g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS") != NULL)
		g_subprocess_launcher_setenv(launcher,
					     "ASAN_OPTIONS",
					     g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS"),
					     TRUE);
	g_subprocess_launcher_unsetenv(launcher, "CODECHAT_ROOM");
	proc = g_subprocess_launcher_spawn(launcher,
					   &error,
					   codechat_test_client_path(),
					   "--server",
					   f->daemon->uri,
					   "--nick",
					   "alice",
					   "chat",
					   NULL);
	g_assert_no_error(error);
	g_subprocess_communicate_utf8(proc,
				      "from a script\n/who\n/code sh\necho hi\n.\n",
				      NULL,
				      &out,
				      NULL,
				      &error);
	g_assert_no_error(error);
	g_assert_true(g_subprocess_get_if_exited(proc));
	g_assert_cmpint(g_subprocess_get_exit_status(proc), ==, 0);
	g_test_message("stdout:\n%s", out);
	g_assert_null(strstr(out, "\033"));
	g_assert_null(strstr(out, "[#general]"));
	g_assert_nonnull(strstr(out, "-- #general has 2 members: "));
	g_assert_nonnull(strstr(out, "<alice> from a script\n"));
	first = bob_expect(f->bob, "from a script");
	code = bob_expect(f->bob, "echo hi");
	g_assert_cmpstr(codechat_test_json_string(code, "lang"), ==, "sh");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

#define ADD(path, func)                                                                            \
	g_test_add("/codechat/chat/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	ADD("say", test_say);
	ADD("typing-kept", test_typing_kept);
	ADD("me", test_me);
	ADD("msg", test_msg);
	ADD("join-part", test_join_part);
	ADD("who", test_who);
	ADD("rooms", test_rooms);
	ADD("history", test_history);
	ADD("code", test_code);
	ADD("input-history", test_input_history);
	ADD("commands", test_commands);
	ADD("completion", test_completion);
	ADD("sigterm", test_sigterm);
	ADD("ctrl-c", test_ctrl_c);
	ADD("hangup", test_hangup);
	ADD("ctrl-z", test_ctrl_z);
	ADD("colors", test_colors);
	ADD("script", test_script);
#undef ADD
	g_test_add_func("/codechat/chat/cannot-connect", test_cannot_connect);
	g_test_add_func("/codechat/chat/signal-offline", test_signal_offline);
	g_test_add_data_func("/codechat/chat/restart", GINT_TO_POINTER(FALSE), test_restart);
	g_test_add_data_func("/codechat/chat/restart-new-store",
			     GINT_TO_POINTER(TRUE),
			     test_restart);
	return g_test_run();
}
