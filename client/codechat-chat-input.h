/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* what the person types in `codechat chat`, a line at a time: GNU readline
 * when stdin and stdout are terminals, plain lines from stdin otherwise */
typedef struct _CodechatChatInput CodechatChatInput;

/**
 * CodechatChatLineFunc:
 * @line: (nullable): a line without its newline, or %NULL at the end of
 *   the input (Ctrl-D, or the end of what was piped in)
 *
 * Returns: whether up-arrow should offer @line again
 */
typedef gboolean (*CodechatChatLineFunc)(const gchar *line, gpointer user_data);

/**
 * CodechatChatCompleteFunc:
 * @line: the whole line being typed
 * @word: the word to complete
 * @start: where @word starts in @line, in bytes
 *
 * Returns: (transfer full) (element-type utf8): what @word may become
 */
typedef GPtrArray *(*CodechatChatCompleteFunc)(const gchar *line,
					       const gchar *word,
					       gint start,
					       gpointer user_data);

CodechatChatInput *
codechat_chat_input_new(CodechatChatLineFunc line_func,
			CodechatChatCompleteFunc complete_func,
			gpointer user_data);
void
codechat_chat_input_free(CodechatChatInput *self);

gboolean
codechat_chat_input_is_interactive(CodechatChatInput *self);
void
codechat_chat_input_start(CodechatChatInput *self, const gchar *prompt);
void
codechat_chat_input_set_prompt(CodechatChatInput *self, const gchar *prompt);
void
codechat_chat_input_set_paused(CodechatChatInput *self, gboolean paused);
void
codechat_chat_input_print(CodechatChatInput *self, const gchar *text);
void
codechat_chat_input_stop(CodechatChatInput *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatChatInput, codechat_chat_input_free)

G_END_DECLS
