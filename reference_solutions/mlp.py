"""DS5220 Problem Set 4, Problem 2 -- reference solution in module form.

A two-layer MLP for MNIST: Flatten -> Linear(784, 128) -> ReLU -> Linear(128, 10)
-> LogSoftmax(dim=1), 101,770 trainable parameters
(784*128 + 128 + 128*10 + 10 = 100,352 + 128 + 1,280 + 10).

Module-form contract: the grader imports this module and trains the model itself.
Nothing is loaded or trained at import time; ``python mlp.py`` trains on
``datasets.MNIST('data', ...)`` with the handout's hyperparameters.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SIZE = 1 * 28 * 28  # input spatial dimension of images
HIDDEN_SIZE = 128         # width of hidden layer
OUTPUT_SIZE = 10          # number of output neurons


class MNISTClassifierMLP(nn.Module):
    """Two-layer fully connected network; returns log-probabilities."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten(start_dim=1)
        self.fc1 = nn.Linear(INPUT_SIZE, HIDDEN_SIZE)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(HIDDEN_SIZE, OUTPUT_SIZE)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        # [batch_size, 1, 28, 28] -> [batch_size, 784]
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        return self.log_softmax(self.fc2(x))


def make_optimizer(model, lr):
    """The optimizer this solution was tuned with (Adam, as in the seed submission)."""
    return torch.optim.Adam(model.parameters(), lr=lr)


def train_one_epoch(train_loader, model, device, optimizer, log_interval, epoch):
    """One pass over ``train_loader``.

    Returns ``(losses, counter, num_correct_train)``: the training loss every
    ``log_interval`` batches, the number of training images seen at those points,
    and the number of correctly classified training images in this epoch.
    """
    model.train()
    losses = []
    counter = []
    num_correct_train = 0
    for i, (img, label) in enumerate(train_loader):
        img, label = img.to(device), label.to(device)
        optimizer.zero_grad()
        output = model(img)
        loss = F.nll_loss(output, label)
        loss.backward()
        optimizer.step()

        pred = output.argmax(dim=1, keepdim=True)
        num_correct_train += pred.eq(label.view_as(pred)).sum().item()

        if (i + 1) % log_interval == 0:
            losses.append(loss.item())
            counter.append(i * train_loader.batch_size + img.size(0)
                           + epoch * len(train_loader.dataset))
    return losses, counter, num_correct_train


def test_one_epoch(test_loader, model, device):
    """Returns ``(test_loss, num_correct)``: the mean NLL per test image and the
    number of correctly classified test images."""
    model.eval()
    test_loss = 0.0
    num_correct = 0
    with torch.no_grad():
        for img, label in test_loader:
            img, label = img.to(device), label.to(device)
            output = model(img)
            test_loss += F.nll_loss(output, label, reduction='sum').item()
            pred = output.argmax(dim=1, keepdim=True)
            num_correct += pred.eq(label.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    return test_loss, num_correct


def main():
    from torchvision import datasets, transforms

    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    seed, batch_size, lr, max_epochs, gamma, log_interval = 1234, 64, 0.01, 10, 0.95, 100
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.manual_seed(seed)

    transform = transforms.Compose([transforms.ToTensor()])
    train_data = datasets.MNIST('data', train=True, download=True, transform=transform)
    test_data = datasets.MNIST('data', train=False, download=True, transform=transform)
    train_loader = torch.utils.data.DataLoader(train_data, batch_size=batch_size, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_data, batch_size=batch_size, shuffle=False)

    model = MNISTClassifierMLP().to(device)
    print(f"Trainable parameters: {sum(p.numel() for p in model.parameters() if p.requires_grad)}")
    optimizer = make_optimizer(model, lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=gamma)
    num_correct_train = num_correct = 0
    for epoch in range(max_epochs):
        _, _, num_correct_train = train_one_epoch(train_loader, model, device, optimizer,
                                                  log_interval, epoch)
        test_loss, num_correct = test_one_epoch(test_loader, model, device)
        scheduler.step()
        print(f"epoch {epoch + 1}: test loss {test_loss:.4f}")
    print(f"Train accuracy: {num_correct_train / len(train_loader.dataset)}")
    print(f"Test accuracy: {num_correct / len(test_loader.dataset)}")


if __name__ == "__main__":
    main()
