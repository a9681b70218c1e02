/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <errno.h>
#include <gio/gunixinputstream.h>
#include <glib-unix.h>
#include <glib/gi18n.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codechat-chat-input.h"

/**
 * CodechatChatInput:
 *
 * The keyboard side of `codechat chat`.  On a terminal (stdin and stdout
 * both), GNU readline edits the line through its callback interface: a
 * GLib watch of stdin feeds it a character at a time, so the main loop
 * never blocks on the person.  codechat_chat_input_print() takes the
 * prompt and the half-typed line off the screen, prints, and draws them
 * again below, with the cursor where it was.  Readline's terminal modes
 * (raw input, bracketed paste) are undone by codechat_chat_input_stop(),
 * which every way out of chat goes through.  GLib handles the signals:
 * readline is told to catch none.
 *
 * Otherwise the lines come from stdin as they are, without a prompt or
 * echo, and only while not paused: a script's next line waits until the
 * chat is connected again.
 *
 * Readline's state is global, so there is at most one interactive input.
 */

struct _CodechatChatInput {
	CodechatChatLineFunc line_func;
	CodechatChatCompleteFunc complete_func;
	gpointer user_data;
	gchar *prompt;		   /* (owned) (nullable) */
	GPtrArray *matches;	   /* (owned) (nullable) of the completion under way */
	GDataInputStream *lines;   /* (owned) (nullable) line mode */
	GCancellable *cancellable; /* (owned) */
	guint stdin_id;		   /* GSource id of the readline watch, 0 if none */
	guint sigwinch_id;	   /* GSource id, 0 if none */
	guint sigtstp_id;	   /* GSource id of the Ctrl-Z pipe, 0 if none */
	gboolean interactive;
	gboolean readline_active; /* its handler is installed */
	gboolean in_handler;	  /* in the line handler: the line was accepted,
				   * the next prompt is not drawn yet */
	gboolean reading;	  /* line mode: a read is pending */
	gboolean paused;
	gboolean stopped;
};

/* readline's callbacks take no user data */
static CodechatChatInput *the_input = NULL;

static CodechatChatInput *
input_ref(CodechatChatInput *self)
{
	return g_rc_box_acquire(self);
}

static void
input_clear(CodechatChatInput *self)
{
	g_assert(self->stdin_id == 0 && self->sigwinch_id == 0 && self->sigtstp_id == 0);
	g_free(self->prompt);
	g_clear_pointer(&self->matches, g_ptr_array_unref);
	g_clear_object(&self->lines);
	g_clear_object(&self->cancellable);
}

static void
input_unref(CodechatChatInput *self)
{
	g_rc_box_release_full(self, (GDestroyNotify)input_clear);
}

/* readline */

static void
readline_cb(char *line)
{
	CodechatChatInput *self = the_input;
	gboolean remember;

	g_assert(self != NULL);
	if (line == NULL) {
		/* Ctrl-D on an empty line; readline went to the next line */
		self->readline_active = FALSE;
		rl_callback_handler_remove();
		codechat_chat_input_stop(self);
		self->line_func(NULL, self->user_data);
		return;
	}
	self->in_handler = TRUE;
	remember = self->line_func(line, self->user_data);
	self->in_handler = FALSE;
	/* after /quit, the history is gone already */
	if (remember && !self->stopped && line[0] != '\0') {
		HIST_ENTRY *last = history_get(history_base + history_length - 1);

		/* no repeats, as with HISTCONTROL=ignoredups */
		if (last == NULL || g_strcmp0(last->line, line) != 0)
			add_history(line);
	}
	free(line);
}

static gboolean
stdin_cb(gint fd, GIOCondition condition, gpointer user_data)
{
	CodechatChatInput *self = user_data;

	if ((condition & G_IO_IN) == 0) {
		/* the terminal went away: as if Ctrl-D */
		self->stdin_id = 0;
		readline_cb(NULL);
		return G_SOURCE_REMOVE;
	}
	rl_callback_read_char();
	return self->stdin_id != 0 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean
sigwinch_cb(gpointer user_data)
{
	CodechatChatInput *self = user_data;

	if (self->readline_active)
		rl_resize_terminal();
	return G_SOURCE_CONTINUE;
}

/* Ctrl-Z.  GLib cannot watch SIGTSTP, and a process stopped while
 * readline holds the terminal leaves the shell a raw one: the handler
 * only wakes the main loop, which gives the terminal back, stops for
 * real, and takes the terminal again when continued (fg). */
static gint sigtstp_pipe[2] = {-1, -1};

static void
sigtstp_handler(int signum)
{
	gint saved_errno = errno;
	gssize written = write(sigtstp_pipe[1], "z", 1);

	(void)written;
	errno = saved_errno;
}

static gboolean
sigtstp_cb(gint fd, GIOCondition condition, gpointer user_data)
{
	CodechatChatInput *self = user_data;
	struct sigaction dfl = {0};
	struct sigaction ours = {0};
	gchar buf[16];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (!self->readline_active)
		return G_SOURCE_CONTINUE;
	rl_cleanup_after_signal();
	fflush(stdout);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGTSTP, &dfl, &ours);
	/* stops here; an orphaned process group is not stopped, and goes on */
	raise(SIGTSTP);
	sigaction(SIGTSTP, &ours, NULL);
	rl_reset_after_signal();
	rl_on_new_line();
	rl_redisplay();
	return G_SOURCE_CONTINUE;
}

static void
watch_sigtstp(CodechatChatInput *self)
{
	g_autoptr(GError) error = NULL;
	struct sigaction sa = {0};

	if (!g_unix_open_pipe(sigtstp_pipe, FD_CLOEXEC, &error) ||
	    !g_unix_set_fd_nonblocking(sigtstp_pipe[0], TRUE, &error) ||
	    !g_unix_set_fd_nonblocking(sigtstp_pipe[1], TRUE, &error)) {
		g_debug("Ctrl-Z will not give the terminal back: %s", error->message);
		return;
	}
	self->sigtstp_id = g_unix_fd_add(sigtstp_pipe[0], G_IO_IN, sigtstp_cb, self);
	sa.sa_handler = sigtstp_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTSTP, &sa, NULL);
}

static void
unwatch_sigtstp(CodechatChatInput *self)
{
	struct sigaction dfl = {0};

	if (self->sigtstp_id == 0)
		return;
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGTSTP, &dfl, NULL);
	g_clear_handle_id(&self->sigtstp_id, g_source_remove);
	close(sigtstp_pipe[0]);
	close(sigtstp_pipe[1]);
	sigtstp_pipe[0] = sigtstp_pipe[1] = -1;
}

/* the @state-th match, from 0 */
static char *
match_cb(const char *text, int state)
{
	CodechatChatInput *self = the_input;

	if (self == NULL || self->matches == NULL || state < 0 ||
	    (guint)state >= self->matches->len)
		return NULL;
	/* readline frees it with free() */
	return strdup(g_ptr_array_index(self->matches, state));
}

static char **
attempted_completion_cb(const char *text, int start, int end)
{
	CodechatChatInput *self = the_input;

	/* never file names: they mean nothing in a chat line */
	rl_attempted_completion_over = 1;
	if (self == NULL || self->complete_func == NULL)
		return NULL;
	g_clear_pointer(&self->matches, g_ptr_array_unref);
	self->matches = self->complete_func(rl_line_buffer, text, start, self->user_data);
	return rl_completion_matches(text, match_cb);
}

static void
start_readline(CodechatChatInput *self)
{
	g_assert(the_input == NULL);
	the_input = self;
	rl_readline_name = "codechat";
	rl_instream = stdin;
	rl_outstream = stdout;
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	rl_attempted_completion_function = attempted_completion_cb;
	rl_callback_handler_install(self->prompt, readline_cb);
	self->readline_active = TRUE;
	self->stdin_id = g_unix_fd_add(STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR, stdin_cb, self);
	self->sigwinch_id = g_unix_signal_add(SIGWINCH, sigwinch_cb, self);
	watch_sigtstp(self);
}

/* line mode */

static void
read_next_line(CodechatChatInput *self);

static void
line_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	CodechatChatInput *self = user_data;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *line = NULL;
	gsize len;

	line = g_data_input_stream_read_line_finish_utf8(G_DATA_INPUT_STREAM(source),
							 result,
							 &len,
							 &error);
	self->reading = FALSE;
	if (self->stopped) {
		input_unref(self);
		return;
	}
	if (error != NULL || line == NULL) {
		if (error != NULL)
			g_printerr(_("codechat: cannot read the input: %s\n"), error->message);
		codechat_chat_input_stop(self);
		self->line_func(NULL, self->user_data);
	} else {
		/* a line typed on Windows, or sent by one */
		if (len > 0 && line[len - 1] == '\r')
			line[len - 1] = '\0';
		self->line_func(line, self->user_data);
		read_next_line(self);
	}
	input_unref(self);
}

/* a line at a time, and only when not paused */
static void
read_next_line(CodechatChatInput *self)
{
	if (self->interactive || self->reading || self->paused || self->stopped)
		return;
	self->reading = TRUE;
	g_data_input_stream_read_line_async(self->lines,
					    G_PRIORITY_DEFAULT,
					    self->cancellable,
					    line_cb,
					    input_ref(self));
}

/**
 * codechat_chat_input_new:
 * @line_func: called with each line, and with %NULL at the end
 * @complete_func: (nullable): for Tab
 *
 * An input that reads nothing yet: see codechat_chat_input_start().  In
 * line mode it starts paused.
 */
CodechatChatInput *
codechat_chat_input_new(CodechatChatLineFunc line_func,
			CodechatChatCompleteFunc complete_func,
			gpointer user_data)
{
	CodechatChatInput *self = g_rc_box_new0(CodechatChatInput);

	self->line_func = line_func;
	self->complete_func = complete_func;
	self->user_data = user_data;
	self->cancellable = g_cancellable_new();
	self->interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	self->paused = TRUE;
	return self;
}

/* stops, and lets go once a pending read was cancelled */
void
codechat_chat_input_free(CodechatChatInput *self)
{
	if (self == NULL)
		return;
	codechat_chat_input_stop(self);
	input_unref(self);
}

gboolean
codechat_chat_input_is_interactive(CodechatChatInput *self)
{
	return self->interactive;
}

void
codechat_chat_input_start(CodechatChatInput *self, const gchar *prompt)
{
	g_free(self->prompt);
	self->prompt = g_strdup(prompt);
	if (self->interactive) {
		start_readline(self);
	} else {
		g_autoptr(GInputStream) in = g_unix_input_stream_new(STDIN_FILENO, FALSE);

		self->lines = g_data_input_stream_new(in);
		/* \n, and \r\n too: line_cb drops the \r */
		g_data_input_stream_set_newline_type(self->lines, G_DATA_STREAM_NEWLINE_TYPE_LF);
		read_next_line(self);
	}
}

/* the prompt is drawn again at once, with the line being typed */
void
codechat_chat_input_set_prompt(CodechatChatInput *self, const gchar *prompt)
{
	if (g_strcmp0(prompt, self->prompt) == 0)
		return;
	g_free(self->prompt);
	self->prompt = g_strdup(prompt);
	if (!self->readline_active) {
		return;
	} else if (self->in_handler) {
		/* after the handler, readline draws the new prompt itself */
		rl_set_prompt(self->prompt);
	} else {
		rl_clear_visible_line();
		rl_set_prompt(self->prompt);
		rl_on_new_line();
		rl_redisplay();
	}
}

/* line mode: no line is read while paused; a terminal is always read */
void
codechat_chat_input_set_paused(CodechatChatInput *self, gboolean paused)
{
	self->paused = paused;
	if (!paused && self->lines != NULL)
		read_next_line(self);
}

/**
 * codechat_chat_input_print:
 * @text: one or more lines, without the final newline
 *
 * Prints above the prompt and the line being typed.
 */
void
codechat_chat_input_print(CodechatChatInput *self, const gchar *text)
{
	/* in the handler, the cursor is at the start of an empty line */
	gboolean redraw = self->readline_active && !self->in_handler;

	if (redraw)
		rl_clear_visible_line();
	fputs(text, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	if (redraw) {
		rl_on_new_line();
		rl_redisplay();
	}
}

/**
 * codechat_chat_input_stop:
 *
 * Reads no more, and gives the terminal back as it was.  An empty prompt
 * is taken off the screen; a half-typed line stays, and what comes next
 * starts below it.
 */
void
codechat_chat_input_stop(CodechatChatInput *self)
{
	self->stopped = TRUE;
	g_clear_handle_id(&self->stdin_id, g_source_remove);
	g_clear_handle_id(&self->sigwinch_id, g_source_remove);
	unwatch_sigtstp(self);
	if (self->readline_active) {
		if (!self->in_handler && rl_end == 0)
			rl_clear_visible_line();
		else if (!self->in_handler)
			fputc('\n', stdout);
		fflush(stdout);
		self->readline_active = FALSE;
		rl_callback_handler_remove();
	}
	if (the_input == self) {
		rl_clear_history();
		the_input = NULL;
	}
	g_cancellable_cancel(self->cancellable);
}
