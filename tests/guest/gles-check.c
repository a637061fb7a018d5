/* The 3D test guest's check: draws a red triangle over a blue background, offscreen, with
 * OpenGL ES 2 on the virtio-gpu render node, reads the pixels back and checks them. Prints
 * the GL renderer's name and PHYLLOME-GLES-OK or PHYLLOME-GLES-FAIL with the reason.
 * Built on the host (Debian 12, as the guest) by scripts/gl-guest.sh. */
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <fcntl.h>
#include <gbm.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SIZE 64

static int fail(const char *why) {
	printf("PHYLLOME-GLES-FAIL %s (EGL error 0x%x, GL error 0x%x)\n", why, eglGetError(),
	       glGetError());
	return 1;
}

static GLuint shader(GLenum kind, const char *source) {
	GLuint s = glCreateShader(kind);
	glShaderSource(s, 1, &source, NULL);
	glCompileShader(s);
	GLint ok = 0;
	glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
	return ok ? s : 0;
}

int main(void) {
	int fd = open("/dev/dri/renderD128", O_RDWR);
	if (fd < 0)
		return fail("no render node");
	struct gbm_device *gbm = gbm_create_device(fd);
	if (!gbm)
		return fail("no GBM device");
	PFNEGLGETPLATFORMDISPLAYEXTPROC get_display =
		(PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
	EGLDisplay display = get_display(EGL_PLATFORM_GBM_KHR, gbm, NULL);
	if (display == EGL_NO_DISPLAY || !eglInitialize(display, NULL, NULL))
		return fail("no EGL display");
	eglBindAPI(EGL_OPENGL_ES_API);
	const EGLint attributes[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
	EGLContext context =
		eglCreateContext(display, EGL_NO_CONFIG_KHR, EGL_NO_CONTEXT, attributes);
	if (context == EGL_NO_CONTEXT ||
	    !eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, context))
		return fail("no GLES context");
	printf("PHYLLOME-GL-RENDERER=%s\n", (const char *)glGetString(GL_RENDERER));

	GLuint texture, framebuffer;
	glGenTextures(1, &texture);
	glBindTexture(GL_TEXTURE_2D, texture);
	glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, SIZE, SIZE, 0, GL_RGBA, GL_UNSIGNED_BYTE, NULL);
	glGenFramebuffers(1, &framebuffer);
	glBindFramebuffer(GL_FRAMEBUFFER, framebuffer);
	glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, texture, 0);
	if (glCheckFramebufferStatus(GL_FRAMEBUFFER) != GL_FRAMEBUFFER_COMPLETE)
		return fail("incomplete framebuffer");

	GLuint vs = shader(GL_VERTEX_SHADER, "attribute vec2 p; void main() { gl_Position = vec4(p, 0.0, 1.0); }");
	GLuint fs = shader(GL_FRAGMENT_SHADER, "precision mediump float; void main() { gl_FragColor = vec4(1.0, 0.0, 0.0, 1.0); }");
	if (!vs || !fs)
		return fail("shaders do not compile");
	GLuint program = glCreateProgram();
	glAttachShader(program, vs);
	glAttachShader(program, fs);
	glBindAttribLocation(program, 0, "p");
	glLinkProgram(program);
	glUseProgram(program);

	/* The lower-left half of the square (below the anti-diagonal). */
	static const GLfloat triangle[] = {-1, -1, 1, -1, -1, 1};
	glViewport(0, 0, SIZE, SIZE);
	glClearColor(0, 0, 1, 1);
	glClear(GL_COLOR_BUFFER_BIT);
	glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, triangle);
	glEnableVertexAttribArray(0);
	glDrawArrays(GL_TRIANGLES, 0, 3);

	unsigned char pixels[SIZE * SIZE * 4];
	memset(pixels, 0x55, sizeof pixels);
	glReadPixels(0, 0, SIZE, SIZE, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
	const unsigned char *inside = &pixels[(4 * SIZE + 4) * 4];
	const unsigned char *outside = &pixels[((SIZE - 4) * SIZE + SIZE - 4) * 4];
	printf("PHYLLOME-GLES-PIXELS inside=%u,%u,%u outside=%u,%u,%u\n", inside[0], inside[1],
	       inside[2], outside[0], outside[1], outside[2]);
	if (inside[0] != 255 || inside[1] != 0 || inside[2] != 0)
		return fail("the triangle is not red");
	if (outside[0] != 0 || outside[1] != 0 || outside[2] != 255)
		return fail("the background is not blue");
	printf("PHYLLOME-GLES-OK\n");
	return 0;
}
